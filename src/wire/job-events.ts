// The engine's stream of job changes (GET /events): one JSON object per line, so the gateway learns a
// job's end the moment it happens instead of at its next poll. Every change has a sequence number
// inside the engine's epoch (a fresh one each start), and a reconnect asks for what came after the
// last one it saw; the first line says whether that could be replayed or the gateway must catch up.
import Type, { type Static } from 'typebox';
import { JobStatusSchema } from './jobs.js';

/** Where a stream starts from: the epoch and last sequence number a previous stream delivered. */
export const JobEventsQuerySchema = Type.Object(
  {
    epoch: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9a-f-]+$' })),
    after: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'the last sequence number seen in that epoch' })),
  },
  { additionalProperties: false },
);
export type JobEventsQuery = Static<typeof JobEventsQuerySchema>;

export const JobEventLineSchema = Type.Union([
  Type.Object(
    {
      type: Type.Literal('hello'),
      epoch: Type.String(),
      seq: Type.Integer({ minimum: 0, description: 'the last change so far' }),
      resumed: Type.Boolean({ description: 'true: every change after the asked one follows; false: some may be missed, catch up by asking' }),
    },
    { additionalProperties: false },
  ),
  Type.Object({ type: Type.Literal('job'), seq: Type.Integer({ minimum: 1 }), status: JobStatusSchema }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('ping'), seq: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
]);
export type JobEventLine = Static<typeof JobEventLineSchema>;

/** How often an idle stream carries a ping, so the gateway can tell a quiet engine from a dead connection. */
export const JOB_EVENTS_PING_MS = 10_000;
