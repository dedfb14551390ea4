import type { ThroughputBucket } from './api.js';
import { formatClock, formatRate } from './format.js';

const BUCKET_MS = 10_000;
const SLOTS = 90; // 15 minutes of 10 s buckets
const WIDTH = SLOTS * 10;
const HEIGHT = 160;

/** The buckets laid into the 90 slots that end with the one holding `now`; missing ones are 0. */
function slots(buckets: readonly ThroughputBucket[], now: number): number[] {
  const last = Math.floor(now / BUCKET_MS);
  const out = new Array<number>(SLOTS).fill(0);
  for (const b of buckets) {
    const i = SLOTS - 1 - (last - Math.floor(Date.parse(b.t) / BUCKET_MS));
    if (i >= 0 && i < SLOTS) out[i]! += b.bytes;
  }
  return out;
}

/** A round scale top at or above `max` bytes per second: 1, 2 or 5 times a power of 1024 or 10. */
function scaleTop(max: number): number {
  if (max <= 0) return 1024;
  const power = 1024 ** Math.floor(Math.log(max) / Math.log(1024));
  for (const step of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1024]) if (power * step >= max) return power * step;
  return power * 1024;
}

/** The aggregate throughput of this node over the last 15 minutes, as a bar chart of 10 s buckets. */
export function ThroughputChart({ buckets, now }: { buckets: readonly ThroughputBucket[]; now: number }) {
  const rates = slots(buckets, now).map((bytes) => bytes / (BUCKET_MS / 1000));
  const peak = Math.max(0, ...rates);
  const top = scaleTop(peak);
  const lastMinute = rates.slice(-6).reduce((a, b) => a + b, 0) / 6;
  const average = rates.reduce((a, b) => a + b, 0) / SLOTS;
  const start = (Math.floor(now / BUCKET_MS) - SLOTS + 1) * BUCKET_MS;
  return (
    <section class="panel chart" aria-labelledby="throughput-title">
      <header class="panel-head">
        <h2 id="throughput-title">Throughput, last 15 minutes</h2>
        <dl class="figures">
          <div><dt>last minute</dt><dd data-figure="last-minute">{formatRate(lastMinute)}</dd></div>
          <div><dt>15 min average</dt><dd>{formatRate(average)}</dd></div>
          <div><dt>peak (10 s)</dt><dd>{formatRate(peak)}</dd></div>
        </dl>
      </header>
      <div class="chart-body">
        <div class="chart-scale" aria-hidden="true">
          <span>{formatRate(top)}</span>
          <span>{formatRate(top / 2)}</span>
          <span>0</span>
        </div>
        <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} preserveAspectRatio="none" role="img" aria-label={`Throughput chart, peak ${formatRate(peak)}`}>
          <line class="grid" x1="0" x2={WIDTH} y1={HEIGHT / 2} y2={HEIGHT / 2} />
          <line class="grid" x1="0" x2={WIDTH} y1="0.5" y2="0.5" />
          {rates.map((rate, i) =>
            rate > 0 ? (
              <rect key={i} x={i * 10 + 1} width="8" y={HEIGHT - (rate / top) * HEIGHT} height={(rate / top) * HEIGHT}>
                <title>{`${formatClock(start + i * BUCKET_MS)}: ${formatRate(rate)}`}</title>
              </rect>
            ) : null,
          )}
        </svg>
      </div>
      <div class="chart-axis" aria-hidden="true">
        <span>−15 min</span>
        <span>−10 min</span>
        <span>−5 min</span>
        <span>now</span>
      </div>
    </section>
  );
}
