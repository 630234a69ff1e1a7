// The store contract (store-contract.ts) against the LevelDB store over the real classic-level.
import { levelHarness, removeBackendDirs } from './helpers/backends.ts';
import { storeContract } from './store-contract.ts';

const contract = storeContract(levelHarness('classic'));
contract.after(removeBackendDirs);
contract.run();
