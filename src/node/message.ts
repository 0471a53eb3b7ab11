/**
 * Typed messages: `defineMessage` wraps a zod schema so publish and
 * subscribe check and strip what crosses the wire.
 */
import { z } from 'zod';
import { ValidationError } from '../protocol/errors.js';

/** Fields whose names start with `_` are metadata: never part of the JSON form. */
export function isMetaField(name: string): boolean {
  return name.startsWith('_');
}

/**
 * A message type declared once: its zod shape gives the TypeScript type, the
 * runtime check and the JSON Schema form.
 */
export interface MessageType<Shape extends z.ZodRawShape = z.ZodRawShape> {
  readonly name: string;
  readonly schema: z.ZodObject<Shape>;
  /** Builds a message from partial input, filling defaults; throws VALIDATION. */
  create(input: z.input<z.ZodObject<Shape>>): z.output<z.ZodObject<Shape>>;
  /** Checks a received or outgoing value; throws VALIDATION naming the first bad field. */
  parse(value: unknown): z.output<z.ZodObject<Shape>>;
  /** The JSON form: every field but the `_` metadata fields. */
  toJSON(message: z.output<z.ZodObject<Shape>>): Record<string, unknown>;
  /** Parses the JSON text form back into a checked message (metadata gets its defaults). */
  fromJSON(text: string): z.output<z.ZodObject<Shape>>;
  /** JSON Schema of the JSON form (what HTTP clients and tools send). */
  jsonSchema(): Record<string, unknown>;
}

/** The TypeScript type of the messages of a MessageType. */
export type MessageOf<T> = T extends MessageType<infer S> ? z.output<z.ZodObject<S>> : never;

function fail(typeName: string, error: z.ZodError): ValidationError {
  const issue = error.issues[0];
  const field = issue === undefined || issue.path.length === 0 ? '(message)' : issue.path.join('.');
  return new ValidationError(field, `${typeName}: field ${field}: ${issue?.message ?? 'invalid'}`, { cause: error });
}

/**
 * Declares a message type.
 *
 * ```ts
 * const Order = defineMessage('Order', { id: z.string(), qty: z.number().default(1) });
 * type Order = MessageOf<typeof Order>;
 * ```
 */
export function defineMessage<Shape extends z.ZodRawShape>(name: string, shape: Shape): MessageType<Shape> {
  const schema = z.object(shape);
  const publicKeys = Object.keys(shape).filter((k) => !isMetaField(k));
  const publicSchema = z.object(Object.fromEntries(publicKeys.map((k) => [k, shape[k]])) as z.ZodRawShape);
  type Out = z.output<z.ZodObject<Shape>>;

  const parse = (value: unknown): Out => {
    const result = schema.safeParse(value);
    if (!result.success) throw fail(name, result.error);
    return result.data;
  };
  const toJSON = (message: Out): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const key of publicKeys) {
      const v = (message as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = v;
    }
    return out;
  };
  return {
    name,
    schema,
    create: (input) => parse(input),
    parse,
    toJSON,
    fromJSON: (text) => {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (cause) {
        throw new ValidationError('(message)', `${name}: not valid JSON`, { cause });
      }
      return parse(value);
    },
    jsonSchema: () => ({ title: name, ...z.toJSONSchema(publicSchema, { io: 'input' }) }),
  };
}

export { z };
