/**
 * One FeatureCloud client: the machine, started with the workload's actors, and a log line for
 * every transition. The HTTP adapter and the simulator's in-process mode both build on this.
 */
import { createActor, type Actor, type PromiseActorLogic } from 'xstate';
import {
  clientMachine,
  type AggregateInput,
  type AggregateOutput,
  type ClientEvent,
  type ClientMachine,
  type ClientSnapshot,
  type LocalComputeInput,
  type LocalComputeOutput,
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
  stop(): void;
}

export function createClient(actors: ClientActors, logger: Logger): Client {
  const actor = createActor(clientMachine.provide({ actors: { ...actors } }));
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

  return {
    actor,
    snapshot: () => actor.getSnapshot(),
    send: (event) => {
      if (!actor.getSnapshot().can(event)) return false;
      actor.send(event);
      return true;
    },
    stop: () => actor.stop(),
  };
}
