// Flags, positionals and commands as data: each one declared once (what yargs is told, the typed value a
// handler gets), and one function that turns yargs' parsed argv into the handler's camelCase args object.
import type { OstConfig } from '../core/config.js';
import { UsageError } from '../core/errors.js';

/** What yargs is told about a flag or positional (a subset of yargs' Options and PositionalOptions). */
export interface Declared {
  type: 'string' | 'boolean';
  describe?: string;
  default?: string | boolean | string[];
  array?: boolean;
  alias?: string;
  demandOption?: boolean;
  coerce?: (v: unknown) => unknown;
}

/** One flag or positional: its yargs declaration and how its parsed value becomes a typed field. */
export interface Spec<T> {
  readonly declared: Declared;
  /** The typed value from what yargs parsed (`name` is the flag, for messages). */
  readonly value: (parsed: unknown, name: string) => T;
}

/** A spec whose handler field is not the flag's camelCase (--overlay-reserve → overlayReserveBytes). */
export interface Renamed<T, F extends string> extends Spec<T> {
  readonly field: F;
}

/** Flags or positionals by name, as the command line spells them. */
export type Specs = Readonly<Record<string, Spec<unknown>>>;

/** `overlay-dir` → `overlayDir`, at the type level. */
type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type FieldOf<K extends string, S> = S extends { readonly field: infer F extends string } ? F : Camel<K>;
type ValueOf<S> = S extends Spec<infer T> ? T : never;

/** The args object a handler takes, as a table of specs declares it. */
export type ArgsOf<S extends Specs> = { [K in keyof S & string as FieldOf<K, S[K]>]: ValueOf<S[K]> };

/** `overlay-dir` → `overlayDir`. */
export function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The one kebab-case → camelCase mapping: yargs' parsed argv into the typed args object of `specs`. */
export function argsOf<S extends Specs>(specs: S, parsed: Readonly<Record<string, unknown>>): ArgsOf<S> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const field = 'field' in spec && typeof spec.field === 'string' ? spec.field : camel(name);
    out[field] = spec.value(parsed[name], name);
  }
  return out as ArgsOf<S>;
}

/** A flag given twice comes as an array from yargs; a one-value flag takes the last. */
const last = (v: unknown): unknown => (Array.isArray(v) ? v[v.length - 1] : v);

function optionalText(v: unknown, name: string): string | undefined {
  const one = last(v);
  if (one === undefined || typeof one === 'string') return one;
  throw new UsageError(`--${name} ${String(one)}: expected text`);
}

function requiredText(v: unknown, name: string): string {
  const text = optionalText(v, name);
  if (text === undefined) throw new UsageError(`missing ${name}`, 'run ost --help for usage');
  return text;
}

function texts(v: unknown): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

function optionalNumber(v: unknown, name: string): number | undefined {
  if (v === undefined || typeof v === 'number') return v;
  throw new UsageError(`--${name} ${String(v)}: expected a number`);
}

function requiredNumber(v: unknown, name: string): number {
  const n = optionalNumber(v, name);
  if (n === undefined) throw new UsageError(`missing --${name}`, 'run ost --help for usage');
  return n;
}

/** A text flag or positional; absent → undefined. */
export const text = (describe?: string): Spec<string | undefined> => ({
  declared: describe === undefined ? { type: 'string' } : { type: 'string', describe },
  value: optionalText,
});

/** A text flag or positional that must be given. */
export const demandedText = (describe?: string): Spec<string> => ({
  declared: { ...text(describe).declared, demandOption: true },
  value: requiredText,
});

/** A repeatable text flag (or a variadic positional): absent → []. */
export const textList = (describe?: string, extra: Partial<Declared> = {}): Spec<string[]> => ({
  declared: {
    type: 'string',
    array: true,
    ...(extra.demandOption ? {} : { default: [] }),
    ...(describe === undefined ? {} : { describe }),
    ...extra,
  },
  value: texts,
});

/** A boolean flag: `def` is its default shown in --help (none: absent reads as false, no default shown). */
export const flag = (describe: string, def?: boolean, extra: Partial<Declared> = {}): Spec<boolean> => ({
  declared: { type: 'boolean', ...(def === undefined ? {} : { default: def }), describe, ...extra },
  value: (v) => last(v) === true,
});

/** A text flag turned into a number by `coerce`; absent and no default → undefined. */
export function numeric(coerce: (v: unknown) => number, describe: string): Spec<number | undefined>;
/** A text flag turned into a number by `coerce`, with a default (coerced too). */
export function numeric(coerce: (v: unknown) => number, describe: string, def: string): Spec<number>;
export function numeric(
  coerce: (v: unknown) => number,
  describe: string,
  def?: string,
): Spec<number | undefined> {
  return def === undefined
    ? { declared: { type: 'string', coerce, describe }, value: optionalNumber }
    : { declared: { type: 'string', default: def, coerce, describe }, value: requiredNumber };
}

/** A text flag checked (and maybe normalised) by `coerce`. */
export const checkedText = (coerce: (v: unknown) => string, describe: string): Spec<string | undefined> => ({
  declared: { type: 'string', coerce, describe },
  value: optionalText,
});

/** `spec`, demanded by yargs (its value type unchanged). */
export const demanded = <T>(spec: Spec<T>): Spec<T> => ({
  ...spec,
  declared: { ...spec.declared, demandOption: true },
});

/** `spec`, handed to the handler as `field`. */
export const renamed = <T, F extends string>(field: F, spec: Spec<T>): Renamed<T, F> => ({ ...spec, field });

/** What a handler gets besides its args: the environment's settings, and the words after `--`. */
export interface Context {
  config: OstConfig;
  rest: string[];
}

/** What a handler returns: its exit code, or nothing for 0. */
export type Outcome = Promise<void> | Promise<number>;

/** A command as data: name, positionals (in order), options (in --help order), description, handler. */
export interface CommandSpec<P extends Specs, O extends Specs> {
  name: string;
  describe: string;
  positionals: P;
  options: O;
  run: (args: ArgsOf<P> & ArgsOf<O>, ctx: Context) => Outcome;
}

/** A command with its types erased, for the one table. */
export interface Command {
  name: string;
  /** yargs' command string: `up [suite]`, `build-images <set..>`. */
  usage: string;
  describe: string;
  positionals: Specs;
  options: Specs;
  run: (parsed: Readonly<Record<string, unknown>>, ctx: Context) => Outcome;
}

/** yargs' word for a positional: `<x>` demanded, `[x]` optional, `..` variadic. */
function usageWord(name: string, d: Declared): string {
  const word = `${name}${d.array ? '..' : ''}`;
  return d.demandOption ? `<${word}>` : `[${word}]`;
}

/** Declare a command; its handler's args type is checked against its specs here. */
export function defineCommand<P extends Specs, O extends Specs>(spec: CommandSpec<P, O>): Command {
  const words = Object.entries(spec.positionals).map(([n, s]) => usageWord(n, s.declared));
  return {
    name: spec.name,
    usage: [spec.name, ...words].join(' '),
    describe: spec.describe,
    positionals: spec.positionals,
    options: spec.options,
    run: (parsed, ctx) =>
      spec.run({ ...argsOf(spec.positionals, parsed), ...argsOf(spec.options, parsed) }, ctx),
  };
}

/**
 * A flag that may take one of a few words: `--name` alone is `bare`, `--name=WORD` one of `words`; absent →
 * undefined (e.g. --deployed, --deployed=auto).
 */
export function flagOrWord<W extends string, B extends string>(
  bare: B,
  words: readonly W[],
  describe: string,
): Spec<B | W | undefined> {
  return {
    declared: { type: 'string', describe },
    value: (v, name) => {
      const one = last(v);
      if (one === undefined) return undefined;
      if (one === '' || one === true || one === 'true') return bare;
      if (typeof one === 'string' && (words as readonly string[]).includes(one)) return one as W;
      throw new UsageError(`--${name}=${String(one)}: expected --${name} or --${name}=${words.join('|')}`);
    },
  };
}
