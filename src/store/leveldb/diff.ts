// verify's comparison: two sorted key spaces walked side by side, in chunks.
import { opts, type Sub } from './keys.ts';

/** Walk two sorted key spaces side by side and report every key whose values differ. */
export const diffSublevels = async (a: Sub, b: Sub, report: (key: string, inA: unknown, inB: unknown) => void): Promise<void> => {
  const ia = a.iterator(opts({ highWaterMarkBytes: 1 << 20 }));
  const ib = b.iterator(opts({ highWaterMarkBytes: 1 << 20 }));
  const reader = (it: typeof ia) => {
    let buf: [string, unknown][] = [];
    let i = 0;
    return async (): Promise<[string, unknown] | undefined> => {
      if (i === buf.length) {
        buf = (await it.nextv(1000)) as [string, unknown][];
        i = 0;
      }
      return buf[i++];
    };
  };
  const nextA = reader(ia);
  const nextB = reader(ib);
  try {
    let ea = await nextA();
    let eb = await nextB();
    while (ea || eb) {
      if (ea && (!eb || ea[0] < eb[0])) {
        report(ea[0], ea[1], undefined);
        ea = await nextA();
      } else if (eb && (!ea || eb[0] < ea[0])) {
        report(eb[0], undefined, eb[1]);
        eb = await nextB();
      } else if (ea && eb) {
        if (JSON.stringify(ea[1]) !== JSON.stringify(eb[1])) report(ea[0], ea[1], eb[1]);
        ea = await nextA();
        eb = await nextB();
      }
    }
  } finally {
    await ia.close();
    await ib.close();
  }
};
