// The server's log level (--log-level): "info" prints every line; "warn" leaves out the routine
// ones, a configuration loaded with nothing left out and a status written, and keeps every
// problem (rejected or partly left-out configurations, failed watches, hooks and status writes,
// Envoys' NACKs, ignored xDS names).
export const LOG_LEVELS = ["info", "warn"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Whether a line of the server's log is routine (shown at "info" only). */
export function isRoutine(line: string): boolean {
  if (/^loaded /.test(line)) return !line.includes("; left out:");
  return /^\S+ \S+\/\S+ status: /.test(line);
}

/** A log function for `level` that writes through `write`. */
export function leveledLog(level: LogLevel, write: (line: string) => void): (line: string) => void {
  return level === "info" ? write : (line) => { if (!isRoutine(line)) write(line); };
}
