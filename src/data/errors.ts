/**
 * A problem with a site's input (config or data): what the person running the site must fix.
 * The message names the file and, where there is one, the field or column; the machine puts it
 * in its error state and the status shows it.
 */
export class InputError extends Error {
  override readonly name = 'InputError';
  constructor(
    message: string,
    readonly file: string | null = null,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}
