import type { CircuitBreakerConfig } from '../config/types.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * Per-replica circuit breaker. Closed: counts consecutive failures. Open: refuses until
 * `timeout_seconds` pass. Half-open: lets `half_open_max_requests` trial requests through;
 * `success_threshold` successes close it, one failure opens it again.
 */
export class CircuitBreaker {
  state: BreakerState = 'closed';
  private failures = 0;
  private successes = 0;
  private trials = 0;
  private openedAt = 0;

  constructor(
    private readonly settings: CircuitBreakerConfig,
    private readonly onChange: (from: BreakerState, to: BreakerState) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether a request may go to this replica now; counts a half-open trial when it may. */
  tryAcquire(): boolean {
    if (this.state === 'open') {
      if (this.now() - this.openedAt < this.settings.timeout_seconds * 1000) return false;
      this.transition('half-open');
    }
    if (this.state === 'half-open') {
      if (this.trials >= this.settings.half_open_max_requests) return false;
      this.trials++;
    }
    return true;
  }

  /** Seconds until an open breaker lets a trial through. */
  retryAfterSeconds(): number {
    const left = this.settings.timeout_seconds * 1000 - (this.now() - this.openedAt);
    return Math.max(1, Math.ceil(left / 1000));
  }

  recordSuccess(): void {
    if (this.state === 'half-open') {
      this.trials = Math.max(0, this.trials - 1);
      if (++this.successes >= this.settings.success_threshold) this.transition('closed');
      return;
    }
    this.failures = 0;
  }

  recordFailure(): void {
    if (this.state === 'half-open') {
      this.transition('open');
      return;
    }
    if (this.state === 'closed' && ++this.failures >= this.settings.failure_threshold) this.transition('open');
  }

  private transition(to: BreakerState): void {
    const from = this.state;
    if (from === to) return;
    this.state = to;
    this.failures = 0;
    this.successes = 0;
    this.trials = 0;
    if (to === 'open') this.openedAt = this.now();
    this.onChange(from, to);
  }
}
