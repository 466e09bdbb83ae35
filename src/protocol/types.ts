/**
 * The FeatureCloud app API's data types (API 1.1.0 plus the platform behaviour described in
 * PROTOCOL.md). Shared by the client, the simulator and the tests.
 */

/** A client id as the controller sent it: the schema says string, the platform also sends numbers. */
export type ClientId = string | number;

/** The body of POST /api/setup after validation. */
export interface SetupInfo {
  readonly id: ClientId;
  readonly coordinator: boolean;
  readonly clients: readonly ClientId[];
  /** The coordinator's id, when the controller sent it or the setup made it unambiguous. */
  readonly coordinatorId: ClientId | null;
}

/** Secure aggregation requested for the head of the outbox; done by the controllers. */
export interface SmpcOptions {
  readonly operation: 'add' | 'multiply';
  readonly serialization: 'json';
  /** Number of share holders; 0 means every client. */
  readonly shards: number;
  /** Decimal digits kept by the fixed-point encoding. */
  readonly exponent: number;
}

/** Differential privacy requested for the head of the outbox; done by the controllers. */
export interface DpOptions {
  readonly serialization: 'json';
  readonly noisetype: 'laplace' | 'gauss';
  readonly epsilon: number;
  readonly delta: number;
  readonly sensitivity?: number;
  readonly clippingVal?: number;
}

export type RunState = 'running' | 'error' | 'action_required';

/** GET /api/status: all nine keys are always present, null when unset. */
export interface Status {
  readonly available: boolean;
  readonly finished: boolean;
  readonly message: string | null;
  readonly progress: number | null;
  readonly state: RunState | null;
  readonly destination: ClientId | null;
  readonly smpc: SmpcOptions | null;
  readonly dp: DpOptions | null;
  readonly memo: string | null;
}

export const STATUS_KEYS = [
  'available',
  'finished',
  'message',
  'progress',
  'state',
  'destination',
  'smpc',
  'dp',
  'memo',
] as const satisfies readonly (keyof Status)[];

/** The platform truncates longer status messages; we never send them. */
export const MAX_STATUS_MESSAGE = 40;
