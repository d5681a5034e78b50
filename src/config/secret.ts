// A credential that is either given inline or read from a file (a Kubernetes or Docker secret).
// File-backed credentials are read again at every token request, so a rotated Secret is picked up
// without a restart. The value never serialises: JSON.stringify and util.inspect show a placeholder.

import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';

export class SecretSource {
  readonly #value: string | undefined;
  readonly file: string | undefined;

  private constructor(value: string | undefined, file: string | undefined) {
    this.#value = value;
    this.file = file;
  }

  static inline(value: string): SecretSource {
    return new SecretSource(value, undefined);
  }

  static fromFile(file: string): SecretSource {
    return new SecretSource(undefined, file);
  }

  /** The current value. Throws (with the file name, never its content) when the file is unreadable or empty. */
  read(): string {
    if (this.#value !== undefined) return this.#value;
    const file = this.file as string;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new Error(`cannot read ${file} (${code})`);
    }
    // Files written with `echo` end in a newline that is not part of the secret.
    const value = text.trim();
    if (value === '') throw new Error(`${file} is empty`);
    return value;
  }

  /**
   * The same source: the same file, or the same inline value (compared here, never shown). What a
   * file holds is not compared: it is read again at every use anyway.
   */
  equals(other: unknown): boolean {
    return other instanceof SecretSource && other.file === this.file && other.#value === this.#value;
  }

  toJSON(): string {
    return this.file ? `[secret from ${this.file}]` : '[secret]';
  }

  toString(): string {
    return this.toJSON();
  }

  [inspect.custom](): string {
    return this.toJSON();
  }
}
