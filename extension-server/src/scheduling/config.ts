// Scheduler settings: scrape cadence, scorer weights, saturation thresholds, and the picker
// weights the filter applies (pushed in the snapshot as `tuning` records). All optional in the
// configuration file's `InfergateConfig` document; the defaults follow the Inference Extension's.
import { z } from "zod";

/** The largest picker weight (the filter refuses larger tuning values: MAX_TUNING in
 * filter/src/core/snapshot.ts; the contract test compares them). */
export const MAX_PICKER_WEIGHT = 1_000_000_000_000;
const weight = z.number().int().min(0).max(MAX_PICKER_WEIGHT);

export const schedulerConfigSchema = z.object({
  scrape: z.object({
    intervalMs: z.number().int().min(5).max(60_000).default(50),
    timeoutMs: z.number().int().min(10).max(60_000).default(1000),
    staleAfterMs: z.number().int().min(10).max(600_000).default(500),
  }).prefault({}),
  scorers: z.object({
    queue: z.number().min(0).default(2),
    kvCache: z.number().min(0).default(2),
    running: z.number().min(0).default(1),
  }).prefault({}),
  saturation: z.object({
    queueThreshold: z.number().positive().default(5),
    kvThreshold: z.number().positive().max(1).default(0.8),
  }).prefault({}),
  picker: z.object({
    /** Only for endpoints without `waiting`/`kv` (stale or unknown metrics): cost per score point below 1000. */
    scoreWeight: weight.default(40),
    inflightWeight: weight.default(2048),
    /** Cost of one request the engine reports waiting (a typical prompt's bytes). */
    waitingBytes: weight.default(16384),
    /** KV pressure above kvThreshold (thousandths): kvBytes × (kv − threshold) / (1000 − kv + 20). */
    kvBytes: weight.default(16384),
    kvThreshold: z.number().int().min(0).max(1000).default(800),
    nearBestBytes: weight.default(2048),
    nearBestPercent: z.number().int().min(0).max(100).default(5),
    /** Preference for an endpoint this proxy recently sent the prompt's prefix to... */
    affinityBytes: weight.default(16384),
    /** ...within its last this-many requests to that endpoint. */
    affinityMemory: weight.default(32),
    affinityBlocks: z.number().int().min(0).max(16).default(4),
    loraLoadBytes: weight.default(8192),
    loraFullBytes: weight.default(262144),
  }).prefault({}),
  push: z.object({
    /** At most one snapshot push per this many milliseconds (later changes coalesce). */
    minIntervalMs: z.number().int().min(0).max(10_000).default(20),
  }).prefault({}),
});

export type SchedulerConfig = z.infer<typeof schedulerConfigSchema>;

export const DEFAULT_SCHEDULER_CONFIG: SchedulerConfig = schedulerConfigSchema.parse({});

export const infergateConfigDoc = z.object({
  apiVersion: z.literal("infergate.io/v1alpha1"),
  kind: z.literal("InfergateConfig"),
  metadata: z.object({ name: z.string() }).passthrough().optional(),
  spec: schedulerConfigSchema,
});
