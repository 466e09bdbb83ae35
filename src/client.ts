/**
 * One FeatureCloud client: the machine, started with the workload's actors, and a log line for
 * every transition. The HTTP adapter and the simulator's in-process mode both build on this.
 */
import { createActor, type Actor, type ActorOptions, type InspectionEvent, type PromiseActorLogic } from 'xstate';
import {
  clientMachine,
  type AggregateInput,
  type AggregateOutput,
  type ClientEvent,
  type ClientMachine,
  type ClientSnapshot,
  type LocalComputeInput,
  type LocalComputeOutput,
  type OutboxItem,
  type WriteResultsInput,
} from '../machines/client.machine.ts';
import { statePath } from '../machines/status.ts';
import type { Logger } from './log.ts';

/** The side effects the machine needs, all required: a client with a missing actor cannot run. */
export interface ClientActors {
  readonly computeLocal: PromiseActorLogic<LocalComputeOutput, LocalComputeInput>;
  readonly aggregate: PromiseActorLogic<AggregateOutput, AggregateInput>;
  readonly writeResults: PromiseActorLogic<void, WriteResultsInput>;
}

export interface Client {
  readonly actor: Actor<ClientMachine>;
  snapshot(): ClientSnapshot;
  /** Sends an event the current state accepts; returns false (and changes nothing) otherwise. */
  send(event: ClientEvent): boolean;
  /**
   * The item GET /data hands out now, without taking it: the last one taken again when no status
   * was read since, else the head of the outbox; null when there is none.
   */
  peekData(): OutboxItem | null;
  /**
   * GET /data: takes the item `peekData` names. A controller always reads the status before it
   * fetches, so a second fetch with no status read in between is a retry of a response lost on
   * the way: it gets the same item again (`retry: true`) instead of the next one.
   */
  takeData(): { readonly item: OutboxItem; readonly retry: boolean } | null;
  /** GET /status was answered: the next fetch is a new one, not a retry. */
  statusRead(): void;
  stop(): void;
}

export interface ClientOptions {
  /**
   * How long to wait for other sites (contributions, a result, confirmations) before reporting
   * an error; null waits without limit.
   */
  readonly waitTimeoutMs?: number | null;
  /** Receives XState's inspection events (the Stately inspector, a trace file). */
  readonly inspect?: (event: InspectionEvent) => void;
  /** The actor's id, so an inspector tells several clients apart. */
  readonly name?: string;
}

/** setTimeout's largest delay (about 24.8 days); a longer one would fire at once. */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/** The machine's timers never keep a process alive by themselves; a server or a test does. */
const backgroundClock: NonNullable<ActorOptions<ClientMachine>['clock']> = {
  setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

export function createClient(actors: ClientActors, logger: Logger, options: ClientOptions = {}): Client {
  const waitTimeoutMs = Math.min(options.waitTimeoutMs ?? LONGEST_TIMER_MS, LONGEST_TIMER_MS);
  const actor = createActor(
    clientMachine.provide({ actors: { ...actors }, delays: { waitTimeout: waitTimeoutMs } }),
    {
      clock: backgroundClock,
      ...(options.inspect === undefined ? {} : { inspect: options.inspect }),
      ...(options.name === undefined ? {} : { id: options.name }),
    },
  );
  let previous = statePath(actor.getSnapshot());

  actor.subscribe({
    next: (snapshot) => {
      const current = statePath(snapshot);
      if (current === previous) return;
      const fields = { from: previous, to: current, round: snapshot.context.round };
      previous = current;
      const failure = snapshot.context.failure;
      if (snapshot.hasTag('error') && failure !== null) {
        logger.error('transition', { ...fields, error: failure.message, detail: failure.detail });
      } else {
        logger.info('transition', fields);
      }
    },
    // An exception in an action is a bug in this project, not in the input: say so loudly.
    error: (error) => logger.error('machine crashed', { error: String(error) }),
  });
  actor.start();

  // Shared by every port the client is served on, so a retry is one whichever port it comes on.
  let lastTaken: OutboxItem | null = null;
  const head = (): OutboxItem | null => {
    const snapshot = actor.getSnapshot();
    return snapshot.hasTag('error') ? null : (snapshot.context.outbox[0] ?? null);
  };

  return {
    actor,
    snapshot: () => actor.getSnapshot(),
    send: (event) => {
      if (!actor.getSnapshot().can(event)) return false;
      actor.send(event);
      return true;
    },
    peekData: () => lastTaken ?? head(),
    takeData: () => {
      if (lastTaken !== null) return { item: lastTaken, retry: true };
      const item = head();
      if (item === null) return null;
      actor.send({ type: 'fc.data.fetched', itemId: item.id });
      lastTaken = item;
      return { item, retry: false };
    },
    statusRead: () => {
      lastTaken = null;
    },
    stop: () => actor.stop(),
  };
}
