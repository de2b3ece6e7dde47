import pino, { type Logger } from 'pino';
import type { LoggingConfig } from '../config/types.js';

export type { Logger };

/** JSON lines for machines; pretty output only when a person is watching a terminal. */
export function createLogger(config: LoggingConfig, stream: NodeJS.WritableStream = process.stdout): Logger {
  const pretty = config.format === 'pretty' || (config.format === 'auto' && (stream as { isTTY?: boolean }).isTTY === true);
  if (pretty) {
    return pino({ level: config.level, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino({ level: config.level, base: { service: 'karasu' } }, pino.destination({ dest: (stream as { fd?: number }).fd ?? 1, sync: false }));
}
