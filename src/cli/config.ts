import { readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError, type Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { NodesetError } from '../protocol/errors.js';

/**
 * Option values come from, lowest first: built-in defaults, `--config FILE`
 * (YAML or JSON), environment variables `NODESET_<OPTION>` and command-line
 * flags. Every value is validated; a bad one stops the command with exit 2.
 */
export const USAGE_EXIT_CODE = 2;

const INT_PARSER = Symbol('nodeset.intOption');
type IntParser = ((value: string) => number) & { [INT_PARSER]?: number };

/** A commander argument parser for integers >= min, recognised by the config schema. */
export function intOption(name: string, min = 0): (value: string) => number {
  const parse: IntParser = (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
  parse[INT_PARSER] = min;
  return parse;
}

/** The environment variable of a long option: `--host-name` → `NODESET_HOST_NAME`. */
export function envName(option: Option): string | undefined {
  return option.long === undefined ? undefined : `NODESET_${option.long.slice(2).toUpperCase().replace(/-/g, '_')}`;
}

function schemaFor(option: Option): z.ZodType {
  if (option.argChoices !== undefined) return z.enum(option.argChoices as [string, ...string[]]);
  const min = (option.parseArg as IntParser | undefined)?.[INT_PARSER];
  if (min !== undefined) return z.number().int().min(min);
  if (option.variadic) return z.union([z.array(z.string()), z.string().transform((s) => [s])]);
  if (!option.required && !option.optional) return z.boolean();
  return z.union([z.string(), z.number().transform(String)]);
}

const camel = (key: string) => key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Every option of a command and its ancestors, by attribute name. */
function knownOptions(command: Command): Map<string, { command: Command; option: Option }> {
  const known = new Map<string, { command: Command; option: Option }>();
  for (let c: Command | null = command; c !== null; c = c.parent) {
    for (const option of c.options) {
      const key = option.attributeName();
      if (!known.has(key) && key !== 'version' && key !== 'config') known.set(key, { command: c, option });
    }
  }
  return known;
}

/** Reads and validates a config file against the options of `command`. */
export function readConfig(path: string, command: Command): Map<string, { command: Command; value: unknown }> {
  let data: unknown;
  try {
    data = parseYaml(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new NodesetError('BAD_OPTION', `config file ${path}: ${(cause as Error).message}`, { cause });
  }
  if (data === null || data === undefined) return new Map();
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new NodesetError('BAD_OPTION', `config file ${path}: expected a map of option names to values`);
  }
  const known = knownOptions(command);
  const out = new Map<string, { command: Command; value: unknown }>();
  for (const [rawKey, rawValue] of Object.entries(data)) {
    const key = camel(rawKey);
    const entry = known.get(key);
    if (entry === undefined) {
      throw new NodesetError(
        'BAD_OPTION',
        `config file ${path}: unknown key "${rawKey}" (${command.name()} accepts: ${[...known.keys()].sort().join(', ')})`,
      );
    }
    const parsed = schemaFor(entry.option).safeParse(rawValue);
    if (!parsed.success) {
      throw new NodesetError(
        'BAD_OPTION',
        `config file ${path}: key "${rawKey}": ${parsed.error.issues[0]?.message ?? 'invalid value'}`,
      );
    }
    out.set(key, { command: entry.command, value: parsed.data });
  }
  return out;
}

/**
 * The options of an action, with the config file applied under env and flags.
 * Call it first thing in an action handler.
 */
export function resolveOptions<T>(command: Command): T {
  const below = (source: string | undefined) => source === undefined || source === 'default' || source === 'implied';
  const globals = command.optsWithGlobals() as { config?: string };
  const configPath = globals.config ?? process.env.NODESET_CONFIG;
  if (configPath !== undefined && configPath !== '') {
    for (const [key, { value }] of readConfig(configPath, command)) {
      for (const owner of owners(command, key)) {
        if (below(owner.getOptionValueSource(key))) owner.setOptionValueWithSource(key, value, 'config');
      }
    }
  }
  for (const [key, { option }] of knownOptions(command)) {
    const name = envName(option);
    const raw = name === undefined ? undefined : process.env[name];
    if (raw === undefined || raw === '' || key === 'hashToken') continue;
    const value = envValue(option, name as string, raw);
    for (const owner of owners(command, key)) {
      const source = owner.getOptionValueSource(key);
      if (below(source) || source === 'config') owner.setOptionValueWithSource(key, value, 'env');
    }
  }
  return command.optsWithGlobals() as T;
}

/**
 * The command and those of its ancestors that define an option. A
 * subcommand may repeat its parent's (`nodeset-node publisher
 * --dispatcher-url`): a value from the config file or the environment goes
 * to each, since optsWithGlobals() lets the parent's default win over the
 * subcommand's value.
 */
function owners(command: Command, key: string): Command[] {
  const out: Command[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) {
    if (c.options.some((o) => o.attributeName() === key)) out.push(c);
  }
  return out;
}

function envValue(option: Option, name: string, raw: string): unknown {
  if (!option.required && !option.optional) return !['0', 'false', 'no'].includes(raw.toLowerCase());
  if (option.argChoices !== undefined && !option.argChoices.includes(raw)) {
    throw new NodesetError(
      'BAD_OPTION',
      `${name}: ${JSON.stringify(raw)} is not one of ${option.argChoices.join(', ')}`,
    );
  }
  try {
    const value = option.parseArg === undefined ? raw : option.parseArg(raw, undefined);
    return option.variadic && !Array.isArray(value) ? [value] : value;
  } catch (err) {
    throw new NodesetError('BAD_OPTION', `${name}: ${(err as Error).message}`);
  }
}
