// What a process needs to become the host besides LevelDB (the engine, the host, its socket),
// in one module: connect.ts loads it only when no host answers, while the database opens, and
// the bundle keeps it in one chunk, so a client never pays for it and a host loads it at once.
export { Engine } from '../engine/engine.ts';
export { Host } from './host.ts';
export { serve } from './server.ts';
