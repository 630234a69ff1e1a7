// Everything a process needs to become the host (LevelDB, the engine, the host, its socket),
// in one module: connect.ts loads it only when no host answers, and the bundle keeps it in one
// chunk, so a client never pays for it and a host loads it in one piece.
export { ClassicLevel } from 'classic-level';
export { Engine } from '../engine/engine.ts';
export { Host } from './host.ts';
export { serve } from './server.ts';
