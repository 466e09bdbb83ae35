/**
 * The computations this app can run, by the name config.yml gives (`computation: <name>`).
 * To add one: import it and add `register(it)` to COMPUTATIONS.
 */
import { basename } from 'node:path';
import { APP_NAME, CONFIG_FILE, parseConfigPart } from '../data/config.ts';
import { InputError } from '../data/errors.ts';
import type { Table } from '../data/table.ts';
import { linearRegression } from './linear-regression.ts';
import { logisticRegression } from './logistic-regression.ts';
import { statistics } from './statistics.ts';
import type { Computation, ConfiguredComputation, Json, NumericTree, PreparedSite } from './types.ts';

interface RegisteredComputation {
  readonly name: string;
  configure(parameters: unknown, configFile: string): ConfiguredComputation;
}

const COMPUTATIONS: readonly RegisteredComputation[] = [
  register(statistics),
  register(linearRegression),
  register(logisticRegression),
];

/** The names config.yml may give as `computation`. */
export const COMPUTATION_NAMES: readonly string[] = COMPUTATIONS.map((computation) => computation.name);

/**
 * Finds the computation config.yml names and validates its parameters. Errors are InputErrors
 * naming the file and field, e.g. `config.yml: fc-xstate-client.parameters.columns must ...`.
 */
export function configureComputation(
  name: string,
  parameters: unknown,
  configFile: string = CONFIG_FILE,
): ConfiguredComputation {
  const computation = COMPUTATIONS.find((candidate) => candidate.name === name);
  if (computation === undefined) {
    const file = basename(configFile);
    const field = `${APP_NAME}.computation`;
    throw new InputError(`${file}: ${field} '${name}' is not known (known: ${COMPUTATION_NAMES.join(', ')})`, file, field);
  }
  return computation.configure(parameters, configFile);
}

/** Keeps a computation's types inside one closure, so the list can hold computations of any types. */
function register<Params, Data, Contribution extends NumericTree, Global extends Json, Result extends Json>(
  computation: Computation<Params, Data, Contribution, Global, Result>,
): RegisteredComputation {
  return {
    name: computation.name,
    configure: (parameters, configFile) =>
      bind(computation, parseConfigPart(computation.params, parameters, [APP_NAME, 'parameters'], basename(configFile))),
  };
}

/**
 * Erases the types for the runtime. The casts below are sound because every value the runtime
 * hands back was made by this same computation: a PreparedSite by `prepare` (checked by its
 * tag), a contribution by `localStep` at some site (relayed as JSON, summed by SMPC or noised by
 * DP, all of which keep its shape), a global result by our own coordinator's `aggregate`, and a
 * result by `result`. The computation still checks the numbers it reads. Gather messages are
 * handed on as plain JSON: the computation must check their shape itself.
 */
function bind<Params, Data, Contribution extends NumericTree, Global extends Json, Result extends Json>(
  computation: Computation<Params, Data, Contribution, Global, Result>,
  params: Params,
): ConfiguredComputation {
  const context = (round: number, secure: boolean) => ({ params, round, secure });
  const dataOf = (site: PreparedSite): Data => {
    if (site.computation !== computation.name) {
      throw new Error(`${computation.name}: given data prepared for '${site.computation}'`);
    }
    return site.data as Data;
  };

  const gather = computation.gather;
  const gatherRounds = () => {
    if (gather === undefined) throw new Error(`${computation.name}: has no gather rounds`);
    return gather;
  };
  const isGatherRound = (previous: Json | null, round: number) =>
    gather !== undefined && gather.isGatherRound(previous as Global | null, context(round, false));

  return {
    name: computation.name,
    expectedRounds: computation.expectedRounds(params),
    prepare: (table: Table) => ({ computation: computation.name, data: computation.prepare(table, params) }),
    additive: (previous, round) => !isGatherRound(previous, round),
    localStep: (site, previous, round, secure) => {
      if (isGatherRound(previous, round)) throw new Error(`${computation.name}: round ${round} is a gather round, not a sum`);
      return computation.localStep(dataOf(site), previous as Global | null, context(round, secure));
    },
    aggregate: (contributions, previous, round, secure) =>
      computation.aggregate(contributions as readonly Contribution[], previous as Global | null, context(round, secure)),
    gatherStep: (site, previous, round) =>
      gatherRounds().localStep(dataOf(site), previous as Global | null, context(round, false)),
    aggregateGathered: (messages, previous, round) =>
      gatherRounds().aggregate(messages, previous as Global | null, context(round, false)),
    result: (final) => computation.result(final as Global, params),
    report: (result) => computation.report(result as Result, params),
    csv: (result) => (computation.csv ? computation.csv(result as Result, params) : null),
  };
}
