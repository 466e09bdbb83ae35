/**
 * The side effects of a client, as the machine's actors: reading the site's config and data,
 * running the configured computation, and writing results. A contribution that goes through SMPC
 * or DP is JSON, the form the controllers compute on; every other message (plain contributions,
 * global results) is binary (codec.ts), and each side decodes whichever form arrives. A round the
 * computation declares non-additive (a gather round) is sent as JSON without SMPC or DP, and its
 * messages are decoded as plain JSON, not as numeric trees.
 */
import { fromPromise } from 'xstate';
import { join } from 'node:path';
import type { ClientActors } from '../client.ts';
import { configureComputation } from '../computation/registry.ts';
import type { ConfiguredComputation, Json, NumericTree, PreparedSite } from '../computation/types.ts';
import { loadConfig, type SiteConfig } from '../data/config.ts';
import { readTable } from '../data/csv.ts';
import { InputError } from '../data/errors.ts';
import type { Logger } from '../log.ts';
import { decodeJson, decodeNumeric, encodeBinary, encodeJson } from './codec.ts';
import { writeResultFiles } from './results.ts';

export interface WorkloadOptions {
  readonly inputDir: string;
  readonly outputDir: string;
  readonly logger: Logger;
}

interface Session {
  readonly config: SiteConfig;
  readonly computation: ConfiguredComputation;
  readonly site: PreparedSite;
}

/**
 * Under SMPC the coordinator gets one package, the sum over every site, and cannot tell it from
 * a single site's contribution or a stray message. So each site counts itself in: the sum must
 * count every client, or the run ends in an error instead of a partial result that looks whole.
 */
function countedForSmpc(contribution: NumericTree): NumericTree {
  return { contributors: 1, value: contribution };
}

function uncountedSmpcSum(sum: NumericTree, clients: number, noisy: boolean): NumericTree {
  if (typeof sum !== 'object' || Array.isArray(sum) || !('contributors' in sum) || !('value' in sum)) {
    throw new Error('the SMPC aggregate is not a sum of counted contributions; does every site use smpc?');
  }
  const { contributors, value } = sum as { readonly contributors: NumericTree; readonly value: NumericTree };
  // With DP the count carries noise of any size, so there only its presence can be checked.
  if (typeof contributors !== 'number' || (!noisy && Math.abs(contributors - clients) >= 0.5)) {
    throw new Error(
      `the SMPC aggregate holds ${String(contributors)} of ${clients} contributions; every site must configure smpc alike`,
    );
  }
  return value;
}

export function createWorkload(options: WorkloadOptions): ClientActors {
  const { inputDir, outputDir, logger } = options;
  // The site's data is read once and kept for every round. Reading starts now, while the client
  // waits for the controller's setup, so the first round does not wait for it, and a mistake in
  // the input is in the log, in full, as soon as the client starts; the machine meets the same
  // error in its first round and reports it in its status.
  let session: Promise<Session> | null = null;

  const load = (): Promise<Session> => {
    session ??= (async () => {
      const config = await loadConfig(inputDir);
      const computation = configureComputation(config.computation, config.parameters, 'config.yml');
      if (config.smpc?.operation === 'multiply') {
        // Every computation here aggregates sums; a product of the sites' figures means nothing.
        throw new InputError(
          `config.yml: smpc.operation 'multiply' cannot serve ${config.computation}, which adds the sites' figures; use 'add'`,
          'config.yml',
          'smpc.operation',
        );
      }
      const table = await readTable(config.dataFile, { separator: config.separator });
      const site = computation.prepare(table);
      logger.info('data loaded', {
        computation: config.computation,
        file: config.dataName,
        rows: table.rowCount,
        smpc: config.smpc !== null,
        dp: config.dp !== null,
      });
      return { config, computation, site };
    })();
    return session;
  };
  load().catch((error: unknown) => {
    // Still serve: on the platform the status is how the site's user learns what went wrong.
    logger.error('input problem: the run will fail at its first step', {
      error: error instanceof Error ? error.message : String(error),
    });
  });

  return {
    computeLocal: fromPromise(async ({ input }) => {
      const { config, computation, site } = await load();
      const previous = input.global === null ? null : decodeJson(input.global, 'the global result');
      if (!computation.additive(previous, input.round)) {
        // Not a sum (e.g. category labels): the controllers could neither add nor noise it.
        return {
          payload: encodeJson(computation.gatherStep(site, previous, input.round)),
          privacy: { smpc: null, dp: null },
          expectedRounds: computation.expectedRounds,
        };
      }
      const secure = config.smpc !== null;
      const contribution = computation.localStep(site, previous, input.round, secure);
      const relayedAsJson = config.smpc !== null || config.dp !== null;
      return {
        payload: relayedAsJson ? encodeJson(secure ? countedForSmpc(contribution) : contribution) : encodeBinary(contribution),
        privacy: { smpc: config.smpc, dp: config.dp },
        expectedRounds: computation.expectedRounds,
      };
    }),

    aggregate: fromPromise(async ({ input }) => {
      const { config, computation } = await load();
      const previous = input.previous === null ? null : decodeJson(input.previous, 'the previous global result');
      const what = (index: number) => `contribution ${index + 1} of round ${input.round}`;
      const decode = (bytes: Uint8Array, index: number): NumericTree => {
        const tree = decodeNumeric(bytes, what(index));
        return input.secure ? uncountedSmpcSum(tree, input.setup.clients.length, config.dp !== null) : tree;
      };
      const { global, final } = computation.additive(previous, input.round)
        ? computation.aggregate(
            input.contributions.map(decode),
            previous,
            input.round,
            input.secure,
          )
        : computation.aggregateGathered(
            input.contributions.map((bytes, index) => decodeJson(bytes, what(index))),
            previous,
            input.round,
          );
      // A broadcast never goes through SMPC or DP.
      return { payload: encodeBinary(global), final };
    }),

    writeResults: fromPromise(async ({ input }) => {
      const { config, computation } = await load();
      const result: Json = computation.result(decodeJson(input.final, 'the final result'));
      const written = await writeResultFiles(outputDir, {
        json: {
          computation: config.computation,
          client: input.setup.id,
          coordinator: input.setup.coordinator,
          clients: input.setup.clients.length,
          rounds: input.round,
          smpc: config.smpc !== null,
          dp: config.dp !== null,
          result,
        },
        markdown: computation.report(result),
        csv: computation.csv(result),
      });
      logger.info('results written', { files: written.map((file) => join(outputDir, file)) });
    }),
  };
}
