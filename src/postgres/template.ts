/**
 * Cached statements as tagged templates. A statement's text is written
 * once with named placeholders; calling `db(strings, ...values)` with it
 * keeps the client's own `prepare` setting, which `db.unsafe` would not.
 *
 * @module
 */

/** A statement as a tagged template's parts, with its values named in order. */
export interface Template<Name extends string> {
  strings: TemplateStringsArray;
  order: Name[];
}

/**
 * A placeholder for `name` in the text given to {@linkcode template}: each
 * occurrence becomes one parameter.
 */
export function placeholder<Name extends string>(name: Name): string {
  return `\u0000${name}\u0000`;
}

/** Turns a text with placeholders into a template, with runs of whitespace collapsed. */
export function template<Name extends string>(text: string): Template<Name> {
  // postgres.js rebuilds the text and its cache key on every call: keep it short.
  const pieces = text.replace(/\s+/g, " ").trim().split("\u0000");
  const parts = pieces.filter((_, i) => i % 2 === 0);
  const order = pieces.filter((_, i) => i % 2 === 1) as Name[];
  const strings = Object.assign([...parts], { raw: [...parts] });
  return { strings: Object.freeze(strings) as unknown as TemplateStringsArray, order };
}

/**
 * Memoizes `build` per owner (a store: its table names are in the text)
 * and per shape, the shape named by `keyOf`.
 */
export function cachedBuild<Owner extends object, Shape, Name extends string>(
  keyOf: (shape: Shape) => string,
  build: (owner: Owner, shape: Shape) => Template<Name>,
): (owner: Owner, shape: Shape) => Template<Name> {
  const cache = new WeakMap<Owner, Map<string, Template<Name>>>();
  return (owner, shape) => {
    let byShape = cache.get(owner);
    if (!byShape) cache.set(owner, byShape = new Map());
    const key = keyOf(shape);
    let statement = byShape.get(key);
    if (!statement) byShape.set(key, statement = build(owner, shape));
    return statement;
  };
}
