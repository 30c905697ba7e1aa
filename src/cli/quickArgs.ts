/**
 * A parser for the plain command lines most runs are (`ckpt log`, `ckpt commit -m msg file`), so
 * such a run starts without loading yargs. It reads a command's options from the command's own
 * builder (run against a recorder, not yargs) and gives the argv yargs would give. Anything it is
 * not sure of (--help, --version, `--`, --no-x, bundled short flags, a value that starts with a
 * dash, a repeated option, an unknown option, a missing or surplus argument, a value outside its
 * choices, a builder that does more than declare options) returns undefined: yargs then parses
 * the line and says what is wrong with it, as before.
 */
import type { CommandModule } from 'yargs';
import { GLOBAL_OPTIONS } from './globalOptions.js';

interface OptionSpec {
  name: string;
  type: 'string' | 'boolean' | 'number';
  aliases: string[];
  array: boolean;
  default?: unknown;
  choices?: readonly unknown[];
  demand: boolean;
}

interface PositionalSpec {
  name: string;
  variadic: boolean;
  required: boolean;
  default?: unknown;
}

interface CommandSpec {
  name: string;
  positionals: PositionalSpec[];
  /** By every name and alias. */
  options: Map<string, OptionSpec>;
  /** Each option once. */
  list: OptionSpec[];
}

type Declared = { type?: string; alias?: string | readonly string[]; array?: boolean; default?: unknown; choices?: readonly unknown[]; demandOption?: boolean | string };

const camel = (s: string) => s.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

function optionSpec(name: string, d: Declared): OptionSpec | undefined {
  if (d.type !== 'string' && d.type !== 'boolean' && d.type !== 'number') return undefined;
  const aliases = d.alias === undefined ? [] : typeof d.alias === 'string' ? [d.alias] : [...d.alias];
  const spec: OptionSpec = { name, type: d.type, aliases, array: Boolean(d.array), demand: Boolean(d.demandOption) };
  if ('default' in d) spec.default = d.default;
  if (d.choices) spec.choices = d.choices;
  return spec;
}

/** What a command declares, read from its builder; undefined when the builder does more than declare. */
function commandSpec(c: CommandModule<object, never>): CommandSpec | undefined {
  if (typeof c.command !== 'string' || (c.builder !== undefined && typeof c.builder !== 'function')) return undefined;
  const [name, ...words] = c.command.split(' ');
  const positionals: PositionalSpec[] = [];
  for (const w of words) {
    const m = /^([<[])([A-Za-z][\w-]*)(\.\.)?[>\]]$/.exec(w);
    if (!m) return undefined;
    positionals.push({ name: m[2], variadic: Boolean(m[3]), required: m[1] === '<' });
  }
  const options = new Map<string, OptionSpec>();
  const list: OptionSpec[] = [];
  let plain = true;
  const add = (spec: OptionSpec | undefined) => {
    if (!spec) return void (plain = false);
    for (const n of [spec.name, ...spec.aliases]) {
      if (options.has(n)) plain = false;
      options.set(n, spec);
    }
    list.push(spec);
  };
  for (const [n, d] of Object.entries(GLOBAL_OPTIONS)) add(optionSpec(n, d as Declared));
  const recorder: Record<string, unknown> = {};
  const proxy: object = new Proxy(recorder, {
    get: (_t, key) => {
      if (key === 'positional') {
        return (n: string, d: Declared) => {
          const p = positionals.find((x) => x.name === n);
          // a positional yargs would convert (no type: numbers) or one of another type
          if (!p || d.type !== 'string' || (d.array !== undefined && Boolean(d.array) !== p.variadic) || d.choices) plain = false;
          else if ('default' in d) p.default = d.default;
          return proxy;
        };
      }
      if (key === 'option') {
        return (n: string, d: Declared) => {
          add(optionSpec(n, d));
          return proxy;
        };
      }
      plain = false;
      return () => proxy;
    },
  });
  try {
    if (typeof c.builder === 'function') (c.builder as (y: never) => unknown)(proxy as never);
  } catch {
    return undefined;
  }
  // every positional must have been declared with a type, so yargs would not convert it
  return plain ? { name, positionals, options, list } : undefined;
}

const specs = new WeakMap<object, CommandSpec | null>();

function specOf(c: CommandModule<object, never>): CommandSpec | undefined {
  if (!specs.has(c)) specs.set(c, commandSpec(c) ?? null);
  return specs.get(c) ?? undefined;
}

const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?$/;

/** The first word of a command line that is not an option: the command's name, if it is plain. */
export function quickCommandName(argv: string[]): string | undefined {
  const first = argv[0];
  return first !== undefined && /^[a-z][a-z-]*$/.test(first) ? first : undefined;
}

/**
 * yargs' argv for `argv` (`argv[0]` the command's name) given command `c`, or undefined when
 * the line is not plain enough to be sure of.
 */
export function quickArgs(argv: string[], c: CommandModule<object, never>): Record<string, unknown> | undefined {
  const spec = specOf(c);
  if (!spec || argv[0] !== spec.name) return undefined;
  const values = new Map<OptionSpec, unknown>();
  const words: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('-')) {
      words.push(a);
      continue;
    }
    let key: string;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      key = eq < 0 ? a.slice(2) : a.slice(2, eq);
      inline = eq < 0 ? undefined : a.slice(eq + 1);
      if (key.length < 2 || key.startsWith('no-')) return undefined; // `--`, `--x`, negations
    } else {
      if (a.length !== 2) return undefined; // `-`, `-abc`, `-m=x`, `-1`
      key = a.slice(1);
    }
    const o = spec.options.get(key);
    if (!o || (values.has(o) && !o.array)) return undefined;
    if (o.type === 'boolean') {
      if (inline !== undefined || argv[i + 1] === 'true' || argv[i + 1] === 'false') return undefined;
      values.set(o, true);
      continue;
    }
    let v = inline;
    if (v === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('-')) return undefined;
      v = next;
      i++;
    }
    // yargs' arrays take every word up to the next option: only a lone value here
    if (o.array && inline === undefined && argv[i + 1] !== undefined && !argv[i + 1].startsWith('-')) return undefined;
    let value: unknown = v;
    if (o.type === 'number') {
      if (!NUMBER.test(v)) return undefined;
      value = Number(v);
    }
    if (o.choices && !o.choices.includes(value)) return undefined;
    values.set(o, o.array ? [...((values.get(o) as unknown[] | undefined) ?? []), value] : value);
  }
  const out: Record<string, unknown> = { _: [spec.name] };
  for (const p of spec.positionals) {
    if (p.variadic) {
      const rest = words.splice(0);
      if (p.required && rest.length === 0) return undefined;
      out[p.name] = rest;
    } else {
      const w = words.shift();
      if (w === undefined && p.required) return undefined;
      if (w !== undefined) out[p.name] = w;
      else if ('default' in p) out[p.name] = p.default;
    }
  }
  if (words.length) return undefined; // surplus words: yargs' strict mode says which
  for (const o of spec.list) {
    let v = values.get(o);
    if (v === undefined) {
      if (o.demand) return undefined;
      if (!('default' in o)) continue;
      v = o.default;
    }
    for (const n of [o.name, ...o.aliases]) {
      out[n] = v;
      if (n.includes('-')) out[camel(n)] = v;
    }
  }
  out.$0 = 'ckpt';
  return out;
}
