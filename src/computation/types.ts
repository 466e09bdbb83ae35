/**
 * The contract between the client and a federated computation. A computation is plain functions
 * over plain data: no HTTP, no state machine, no file system. The runtime loads the site's table,
 * encodes and decodes messages, and the machine decides when each step runs.
 *
 * One round: every site runs `localStep`; the coordinator runs `aggregate` over all contributions
 * and decides whether another round is needed; the global result goes back to every site.
 *
 * Most rounds are additive: contributions are numeric trees that the controllers may sum (SMPC)
 * or noise (DP). A computation that needs something else first, such as the union of every
 * site's category labels, declares `gather` rounds: their messages are any JSON, travel without
 * SMPC or DP, and reach the coordinator one per site.
 */
import type { z } from 'zod';
import type { Table } from '../data/table.ts';

/** JSON made of numbers only: what the controllers can sum (SMPC) and add noise to (DP). */
export type NumericTree =
  | number
  | readonly NumericTree[]
  | { readonly [key: string]: NumericTree };

/** Any JSON value: what a global result may hold. */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

export interface RoundContext<Params> {
  readonly params: Params;
  /** From 1. */
  readonly round: number;
  /**
   * True with SMPC: contributions must be numeric trees, the coordinator receives only their
   * element-wise sum, and nothing that is not a sum (a minimum, a list of values) can be sent.
   */
  readonly secure: boolean;
}

export interface AggregateResult<Global> {
  readonly global: Global;
  /** True when this global result is the last one. */
  readonly final: boolean;
}

export interface Computation<Params, Data, Contribution extends NumericTree, Global extends Json, Result extends Json> {
  /** The name used in config.yml (`computation: <name>`). */
  readonly name: string;
  /** Validates this computation's part of config.yml. */
  readonly params: z.ZodType<Params>;
  /** How many rounds the computation expects (for progress only; it may end earlier or later). */
  expectedRounds(params: Params): number;
  /** Reads what the computation needs from the site's table; throws an InputError naming the column. */
  prepare(table: Table, params: Params): Data;
  /** This site's contribution for the round; `previous` is the last global result (null in round 1). */
  localStep(data: Data, previous: Global | null, context: RoundContext<Params>): Contribution;
  /**
   * Combines one round. Without SMPC, one contribution per site (the coordinator's first); with
   * SMPC exactly one: their element-wise sum.
   */
  aggregate(
    contributions: readonly Contribution[],
    previous: Global | null,
    context: RoundContext<Params>,
  ): AggregateResult<Global>;
  /** The result every site writes, from the final global result. */
  result(final: Global, params: Params): Result;
  /** A readable Markdown report of the result. */
  report(result: Result, params: Params): string;
  /** Optionally a CSV table of the result. */
  csv?(result: Result, params: Params): string;
  /** Optional rounds whose contributions are not sums; without it every round is additive. */
  readonly gather?: GatherRounds<Params, Data, Global>;
}

/**
 * Rounds that collect something other than a sum (a union, a list), so they cannot go through
 * SMPC or DP: each site's message is sent as it is, in the clear, and the coordinator sees one
 * per site. Use them only for what may be revealed to the coordinator (e.g. category labels).
 */
export interface GatherRounds<Params, Data, Global extends Json> {
  /** Whether the round that follows `previous` (null: the first round) is a gather round. */
  isGatherRound(previous: Global | null, context: RoundContext<Params>): boolean;
  /** This site's message for a gather round (its context is never secure). */
  localStep(data: Data, previous: Global | null, context: RoundContext<Params>): Json;
  /** Combines one message per site, the coordinator's first; like `aggregate`, it may end the run. */
  aggregate(messages: readonly Json[], previous: Global | null, context: RoundContext<Params>): AggregateResult<Global>;
}

/** A computation bound to validated parameters, with its types erased for the runtime. */
export interface ConfiguredComputation {
  readonly name: string;
  readonly expectedRounds: number;
  prepare(table: Table): PreparedSite;
  /**
   * Whether the round that follows `previous` sums its contributions. When it does not, the
   * runtime sends `gatherStep`'s message without SMPC or DP and hands the coordinator's
   * `aggregateGathered` the messages decoded as plain JSON.
   */
  additive(previous: Json | null, round: number): boolean;
  localStep(site: PreparedSite, previous: Json | null, round: number, secure: boolean): NumericTree;
  aggregate(
    contributions: readonly NumericTree[],
    previous: Json | null,
    round: number,
    secure: boolean,
  ): AggregateResult<Json>;
  gatherStep(site: PreparedSite, previous: Json | null, round: number): Json;
  aggregateGathered(messages: readonly Json[], previous: Json | null, round: number): AggregateResult<Json>;
  result(final: Json): Json;
  report(result: Json): string;
  csv(result: Json): string | null;
}

/** What `prepare` made of a site's table; only the computation that made it looks inside. */
export interface PreparedSite {
  readonly computation: string;
  readonly data: unknown;
}
