import { readdirSync, readFileSync } from 'node:fs';

/** Whether a process is running (a zombie, dead but not yet reaped, counts as gone). */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
};

/** The environment variable that tags every process of one attempt (inherited by its children). */
export const RUN_TAG = 'QUEUECTL_RUN';
export const runTag = (workerId: string, jobId: string, attempt: number): string => `${workerId}/${jobId}/${attempt}`;

/**
 * SIGKILL every process group still running an attempt, found by its tag. A worker killed with
 * SIGKILL cannot end its jobs' process groups (they are detached from it): its job runner does
 * when it sees the worker gone, and, should the runner be killed too, the host does it when the
 * attempt's lease expires, so a retry never runs beside its own leftover.
 */
export const killAttempt = (tag: string): number => {
  const needle = `\0${RUN_TAG}=${tag}\0`;
  let killed = 0;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return 0; // no /proc: nothing we can find
  }
  for (const pid of pids) {
    try {
      if (!`\0${readFileSync(`/proc/${pid}/environ`, 'latin1')}`.includes(needle)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      try { process.kill(-pgid, 'SIGKILL'); } catch {}
      try { process.kill(Number(pid), 'SIGKILL'); } catch {}
      killed++;
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return killed;
};
