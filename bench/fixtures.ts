/**
 * A fixture computation for the benchmarks: every site contributes a vector of `length` numbers
 * each round, the coordinator sums them and broadcasts the sum, for `rounds` rounds. It runs on
 * the client's real machine, HTTP adapter and codec; only the computation is a stand-in, so the
 * figures are those of the transport (HTTP, the machine, the controller's relay).
 *
 * Without SMPC a contribution is a Float64Array in a binary message, written in place
 * (VectorWriter); with SMPC it is JSON of numbers, the form the controllers sum.
 */
import { fromPromise } from 'xstate';
import type {
  AggregateInput,
  AggregateOutput,
  LocalComputeInput,
  LocalComputeOutput,
  WriteResultsInput,
} from '../machines/client.machine.ts';
import type { ClientActors } from '../src/client.ts';
import type { SetupInfo, SmpcOptions } from '../src/protocol/types.ts';
import { decodeMessage, encodeBinary, encodeJson, VectorWriter, type Message } from '../src/runtime/codec.ts';

export interface VectorJob {
  /** Numbers per contribution. */
  readonly length: number;
  readonly rounds: number;
  readonly smpc: boolean;
}

export const SMPC: SmpcOptions = { operation: 'add', serialization: 'json', shards: 0, exponent: 8 };

function siteIndex(setup: SetupInfo): number {
  return setup.clients.findIndex((id) => String(id) === String(setup.id));
}

/** Site s's number i in round r: small integers, so sums are exact and easy to check. */
export const contribution = (site: number, round: number, index: number) => site + round + (index % 7);

/** What the final sum must be at index i, over `sites` sites in round r. */
export const expectedSum = (sites: number, round: number, index: number) =>
  (sites * (sites - 1)) / 2 + sites * (round + (index % 7));

function vectorOf(message: Message, what: string): Float64Array | readonly number[] {
  const value = typeof message === 'object' && message !== null && !Array.isArray(message) && !(message instanceof Float64Array)
    ? (message as { readonly [key: string]: Message })['v']
    : undefined;
  if (value instanceof Float64Array) return value;
  if (Array.isArray(value) && value.every((item) => typeof item === 'number')) return value as number[];
  throw new Error(`${what} has no vector 'v'`);
}

export interface Checked {
  readonly site: number;
  readonly round: number;
  readonly ok: boolean;
}

/** The fixture's actors; `onResult` hears whether a site's final sum was right. */
export function vectorActors(job: VectorJob, onResult: (checked: Checked) => void = () => {}): ClientActors {
  return {
    computeLocal: fromPromise<LocalComputeOutput, LocalComputeInput>(async ({ input }) => {
      const site = siteIndex(input.setup);
      if (job.smpc) {
        const numbers = Array.from({ length: job.length }, (_, index) => contribution(site, input.round, index));
        return { payload: encodeJson({ v: numbers }), privacy: { smpc: SMPC, dp: null }, expectedRounds: job.rounds };
      }
      const fill = (into: Float64Array) => {
        for (let index = 0; index < into.length; index++) into[index] = site + input.round + (index % 7);
      };
      return {
        payload: encodeBinary({ round: input.round, v: new VectorWriter(job.length, fill) }),
        privacy: { smpc: null, dp: null },
        expectedRounds: job.rounds,
      };
    }),
    aggregate: fromPromise<AggregateOutput, AggregateInput>(async ({ input }) => {
      const vectors = input.contributions.map((bytes, index) =>
        vectorOf(decodeMessage(bytes, `contribution ${index + 1}`), `contribution ${index + 1}`),
      );
      const sum = new VectorWriter(job.length, (into) => {
        for (const vector of vectors) {
          if (vector.length !== into.length) throw new Error(`a contribution has ${vector.length} numbers, not ${into.length}`);
          // Two loops, so each stays on one kind of array (the JIT's fast path).
          if (vector instanceof Float64Array) {
            for (let index = 0; index < into.length; index++) into[index] = (into[index] ?? 0) + (vector[index] ?? 0);
          } else {
            for (let index = 0; index < into.length; index++) into[index] = (into[index] ?? 0) + (vector[index] ?? 0);
          }
        }
      });
      return { payload: encodeBinary({ round: input.round, v: sum }), final: input.round >= job.rounds };
    }),
    writeResults: fromPromise<void, WriteResultsInput>(async ({ input }) => {
      const sum = vectorOf(decodeMessage(input.final, 'the final result'), 'the final result');
      const sites = input.setup.clients.length;
      const last = job.length - 1;
      const close = (index: number) => Math.abs((sum[index] ?? Number.NaN) - expectedSum(sites, input.round, index)) < 1e-6 * sites;
      onResult({ site: siteIndex(input.setup), round: input.round, ok: sum.length === job.length && close(0) && close(last) });
    }),
  };
}
