// Verify's comparison: two sorted key spaces (a stored projection and the one the log gives,
// on disk or in memory), walked side by side; every key whose values differ is reported.
import { DELETED } from '../fold.ts';
import { opts, type Sub } from './keys.ts';

/** A sorted key space, read entry by entry. */
interface Reader {
  next(): Promise<[string, unknown] | undefined>;
  close(): Promise<void>;
}

export const sublevelReader = (sub: Sub): Reader => {
  const it = sub.iterator(opts({ highWaterMarkBytes: 1 << 20 }));
  let buf: [string, unknown][] = [];
  let i = 0;
  return {
    next: async () => {
      if (i === buf.length) {
        buf = (await it.nextv(1000)) as [string, unknown][];
        i = 0;
      }
      return buf[i++];
    },
    close: () => it.close(),
  };
};

/** The entries of a replay kept in memory (full key -> value or DELETED) under one prefix, in key order. */
export const memoryReader = (cache: Map<string, unknown>, prefix: string): Reader => {
  const entries: [string, unknown][] = [];
  for (const [k, v] of cache) if (v !== DELETED && k.startsWith(prefix)) entries.push([k.slice(prefix.length), v]);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  let i = 0;
  return { next: async () => entries[i++], close: async () => {} };
};

/** Walk two sorted key spaces side by side and report every key whose values differ. */
export const diffSorted = async (a: Reader, b: Reader, report: (key: string, inA: unknown, inB: unknown) => void): Promise<void> => {
  try {
    let ea = await a.next();
    let eb = await b.next();
    while (ea || eb) {
      if (ea && (!eb || ea[0] < eb[0])) {
        report(ea[0], ea[1], undefined);
        ea = await a.next();
      } else if (eb && (!ea || eb[0] < ea[0])) {
        report(eb[0], undefined, eb[1]);
        eb = await b.next();
      } else if (ea && eb) {
        if (JSON.stringify(ea[1]) !== JSON.stringify(eb[1])) report(ea[0], ea[1], eb[1]);
        ea = await a.next();
        eb = await b.next();
      }
    }
  } finally {
    await a.close();
    await b.close();
  }
};
