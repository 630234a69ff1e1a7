// Preloaded (node --import) into a measured process: at exit, write its peak resident set
// size in bytes to $QUEUECTL_BENCH_RSS_FILE.
//
// On Linux this is VmHWM from /proc/self/status: the high-water mark of this program's own
// address space. getrusage's ru_maxrss is not usable here: Linux carries it across exec, so a
// child of a large process (the benchmark runner, after building a big fixture) would report
// at least its parent's size.
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.env.QUEUECTL_BENCH_RSS_FILE;
if (file) {
  delete process.env.QUEUECTL_BENCH_RSS_FILE; // not inherited by the jobs a worker runs
  process.on('exit', () => {
    let bytes = process.resourceUsage().maxRSS * 1024;
    try {
      const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
      if (kb !== undefined) bytes = Number(kb) * 1024;
    } catch {
      // not Linux: ru_maxrss it is
    }
    writeFileSync(file, String(bytes));
  });
}
