// The engine's serial section over the real LevelDB: commands queued together are decided in
// order, and a malformed command (as a broken client could send) is refused on its own
// without stopping the ones around it or the section itself.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Command } from '../src/domain/decide.ts';
import type { Engine } from '../src/engine/engine.ts';
import { openLevelEngine } from './helpers/backends.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';

const spec = (id: string) => ({ id, command: 'true', cwd: '/tmp', priority: 0, maxRetries: null, runAt: null, timeoutMs: null });

test('a malformed command among queued ones is refused alone; the rest and later commands go through', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'queuectl-engine-'));
  const engine = await openLevelEngine(new ClassicLevel(join(dir, 'db')) as unknown as AnyLevel);
  try {
    const bad = [{ type: 'enqueue' }, { type: 'retry' }, { type: 'cancel' }, null] as unknown as Command[];
    const results = await Promise.allSettled([
      engine.execute({ type: 'enqueue', jobs: [spec('a')] }),
      ...bad.map((c) => engine.execute(c)),
      engine.execute({ type: 'enqueue', jobs: [spec('b')] }),
      engine.execute({ type: 'cancel', jobId: 'a' }),
    ]);
    assert.equal(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'rejected', 'rejected', 'fulfilled', 'fulfilled']);
    assert.is((await engine.getJob('a'))?.state, 'cancelled', 'the cancel queued after the bad commands saw the enqueue before them');
    await engine.execute({ type: 'enqueue', jobs: [spec('c')] });
    assert.equal((await engine.counts()).jobs.pending, 2);
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
