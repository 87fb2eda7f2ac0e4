/**
 * SPIRE's `plugins { … }` section as a registry: each plugin type (`KeyManager`, `NodeAttestor`,
 * …) has a multiplicity rule, and each built-in plugin (type + name) registers the schema of its
 * `plugin_data`. Adding a plugin — `KeyManager "pkcs11"`, `NodeAttestor "tpm"` — is registering a
 * {@link definePlugin} definition; the server and the agent each build their own registry.
 *
 * Accepted shapes, as SPIRE (`pkg/common/catalog`) reads them:
 *
 * ```hcl
 * plugins {
 *   KeyManager "disk" { plugin_data { keys_path = "/opt/spire/keys.json" } }
 *   NodeAttestor "join_token" {}
 *   NodeAttestor { x509pop { plugin_data { … } } }    # nested form
 *   NodeAttestor "tpm" plugin_data { … }              # labels all the way down
 * }
 * ```
 *
 * and in JSON `"plugins": { "KeyManager": [{ "disk": { "plugin_data": {…} } }] }` or
 * `"plugins": { "KeyManager": { "disk": {…} } }`. A plugin block may hold `plugin_data` (a block)
 * and `enabled` (default true; a disabled plugin is skipped — its `plugin_data` is not checked —
 * as SPIRE does). `plugin_cmd`, `plugin_checksum`, `plugin_args` (external plugins) and
 * `plugin_data_file` are errors that say so. The same type + name twice is an error, as in SPIRE.
 */
import {
  type BlockOptions,
  type BlockValue,
  block,
  boolean,
  type DecodeContext,
  type Field,
  type Fields,
  joinPath,
  singleBody,
  suggest,
} from './schema.js';
import { type ConfigEntry, objectsOf, type Position } from './tree.js';

/** How many plugins of one type a configuration must (and may) enable. */
export interface PluginTypeSpec {
  /** The type name as written in the file (`KeyManager`). */
  readonly type: string;
  /** Minimum number of enabled plugins of this type. */
  readonly min: number;
  /** Maximum number, or undefined for no limit. */
  readonly max: number | undefined;
  readonly description?: string;
}

/** An enabled plugin with its decoded `plugin_data`. */
export interface PluginConfig<D = unknown> {
  readonly type: string;
  readonly name: string;
  /** The decoded `plugin_data` (keys as in the file, snake_case, defaults applied). */
  readonly data: D;
  /** Where the plugin is declared (the name's position). */
  readonly pos: Position;
}

/** A plugin named in the file but disabled with `enabled = false`. */
export interface PluginRef {
  readonly type: string;
  readonly name: string;
  readonly pos: Position;
}

/** A built-in plugin: its type, name and `plugin_data` schema. */
export interface PluginDefinition<D> {
  readonly type: string;
  readonly name: string;
  readonly description: string | undefined;
  /** The `plugin_data` block schema. */
  readonly data: Field<D, true>;
  /** The `plugin_data` fields, for documentation. */
  readonly fields: Fields;
  /** True when `config` is this plugin (narrows its `data` type). */
  is(config: PluginConfig): config is PluginConfig<D>;
}

/**
 * Defines a built-in plugin from its `plugin_data` fields (see {@link block} for options: use
 * `unsupported` for SPIRE keys this implementation lacks, `check` for cross-field rules).
 */
export function definePlugin<F extends Fields>(
  type: string,
  name: string,
  fields: F,
  options: BlockOptions<F> = {},
): PluginDefinition<BlockValue<F>> {
  if (type === '' || name === '') throw new TypeError('plugin type and name must not be empty');
  return {
    type,
    name,
    description: options.description,
    data: block(fields, options),
    fields,
    is(config: PluginConfig): config is PluginConfig<BlockValue<F>> {
      return config.type === type && config.name === name;
    },
  };
}

/** Options of {@link PluginRegistry}. */
export interface PluginRegistryOptions {
  /** Plugin types SPIRE has that this registry rejects, with the reason (`Notifier`: …). */
  readonly unsupportedTypes?: Readonly<Record<string, string>>;
}

/** The plugin types and built-in plugins a configuration may use. */
export class PluginRegistry {
  readonly #types = new Map<string, PluginTypeSpec>();
  readonly #plugins = new Map<string, Map<string, PluginDefinition<unknown>>>();
  readonly #unsupportedTypes: Readonly<Record<string, string>>;

  constructor(types: readonly PluginTypeSpec[], options: PluginRegistryOptions = {}) {
    for (const t of types) {
      if (this.#types.has(t.type)) throw new TypeError(`plugin type ${t.type} is listed twice`);
      if (t.max !== undefined && t.max < t.min) {
        throw new TypeError(`plugin type ${t.type}: max is below min`);
      }
      this.#types.set(t.type, t);
      this.#plugins.set(t.type, new Map());
    }
    this.#unsupportedTypes = options.unsupportedTypes ?? {};
  }

  /**
   * Registers a built-in plugin.
   *
   * @throws TypeError when its type is not one of the registry's, or it is already registered.
   */
  register<D>(definition: PluginDefinition<D>): this {
    const byName = this.#plugins.get(definition.type);
    if (byName === undefined) throw new TypeError(`unknown plugin type ${definition.type}`);
    if (byName.has(definition.name)) {
      throw new TypeError(`plugin ${definition.type} "${definition.name}" is already registered`);
    }
    byName.set(definition.name, definition as PluginDefinition<unknown>);
    return this;
  }

  /** The definition of a plugin, or undefined. */
  lookup(type: string, name: string): PluginDefinition<unknown> | undefined {
    return this.#plugins.get(type)?.get(name);
  }

  /** The plugin types, in declaration order. */
  types(): readonly PluginTypeSpec[] {
    return [...this.#types.values()];
  }

  /** The registered plugin definitions of a type, in registration order. */
  plugins(type: string): readonly PluginDefinition<unknown>[] {
    return [...(this.#plugins.get(type)?.values() ?? [])];
  }

  /** The reason a SPIRE plugin type is rejected, when it is a known unsupported type. */
  unsupportedTypeReason(type: string): string | undefined {
    return Object.hasOwn(this.#unsupportedTypes, type) ? this.#unsupportedTypes[type] : undefined;
  }
}

/** The decoded `plugins` section. */
export interface DecodedPlugins {
  /** Enabled plugins in declaration order, each with decoded `plugin_data`. */
  readonly enabled: readonly PluginConfig[];
  /** Plugins written with `enabled = false`. */
  readonly disabled: readonly PluginRef[];
}

const EXTERNAL_KEYS = new Set(['plugin_cmd', 'plugin_checksum', 'plugin_args']);
const PLUGIN_KEYS = ['plugin_data', 'enabled'];
const enabledField = boolean({ default: true });

function countRule(spec: PluginTypeSpec, count: number): string | undefined {
  const { min, max, type } = spec;
  if (max !== undefined && min === max && count !== min) {
    if (min === 1) {
      return count === 0
        ? `a ${type} plugin is required`
        : `exactly one ${type} plugin must be enabled, found ${String(count)}`;
    }
    return `exactly ${String(min)} ${type} plugins must be enabled, found ${String(count)}`;
  }
  if (count < min)
    return `at least ${String(min)} ${type} plugin(s) must be enabled, found ${String(count)}`;
  if (max !== undefined && count > max) {
    return max === 1
      ? `at most one ${type} plugin may be enabled, found ${String(count)}`
      : `at most ${String(max)} ${type} plugins may be enabled, found ${String(count)}`;
  }
  return undefined;
}

interface PluginBodyResult {
  enabled: boolean;
  dataEntries: readonly ConfigEntry[];
}

function readPluginBody(
  entries: readonly ConfigEntry[],
  ctx: DecodeContext,
  path: string,
): PluginBodyResult | undefined {
  const before = ctx.problemCount;
  const dataEntries: ConfigEntry[] = [];
  const enabledEntries: ConfigEntry[] = [];
  for (const e of entries) {
    const keyPath = joinPath(path, e.key);
    if (e.key === 'plugin_data') dataEntries.push(e);
    else if (e.key === 'enabled') enabledEntries.push(e);
    else if (EXTERNAL_KEYS.has(e.key)) {
      ctx.report(
        e.keyPos,
        keyPath,
        `${keyPath}: external plugins are not supported; spire-edge runs its built-in plugins only`,
      );
    } else if (e.key === 'plugin_data_file') {
      ctx.report(
        e.keyPos,
        keyPath,
        `${keyPath} is not supported: write the settings in plugin_data`,
      );
    } else {
      ctx.report(e.keyPos, keyPath, () => {
        const hint = suggest(e.key, PLUGIN_KEYS);
        return `unknown key ${JSON.stringify(e.key)} in ${path}${hint === undefined ? '' : ` (did you mean ${JSON.stringify(hint)}?)`}; a plugin block holds plugin_data and enabled`;
      });
    }
  }
  const enabled = enabledField.read(enabledEntries, ctx, joinPath(path, 'enabled'), undefined);
  if (ctx.problemCount !== before || enabled === undefined) return undefined;
  return { enabled, dataEntries };
}

/** Options of {@link pluginsField}. */
export interface PluginsFieldOptions {
  /** Report a problem when the `plugins` block is absent (SPIRE requires it). */
  readonly required?: boolean;
  readonly description?: string;
}

/**
 * The `plugins { … }` field, decoded against `registry`: unknown types and names (with
 * suggestions), duplicates, external plugins and multiplicity rules are all reported.
 */
export function pluginsField(
  registry: PluginRegistry,
  options: PluginsFieldOptions = {},
): Field<DecodedPlugins, true> {
  return {
    kind: 'plugins',
    present: true,
    description: options.description,
    read(entries, ctx, path, parent) {
      const found = singleBody(entries, ctx, path);
      if (found === false) return undefined;
      if (found === undefined && options.required === true) {
        ctx.report(parent, path, `missing required block ${path}`);
        return undefined;
      }
      const blockPos = found === undefined ? parent : found.pos;
      const before = ctx.problemCount;
      const enabled: PluginConfig[] = [];
      const disabled: PluginRef[] = [];
      const seen = new Map<string, Position>();
      const declared = new Map<string, PluginRef[]>();
      for (const typeEntry of found?.body.entries ?? []) {
        const type = typeEntry.key;
        const typePath = joinPath(path, type);
        const spec = registry.types().find((t) => t.type === type);
        if (spec === undefined) {
          const reason = registry.unsupportedTypeReason(type);
          if (reason !== undefined) {
            ctx.report(
              typeEntry.keyPos,
              typePath,
              `plugin type ${type} is not supported: ${reason}`,
            );
          } else {
            ctx.report(typeEntry.keyPos, typePath, () => {
              const names = registry.types().map((t) => t.type);
              const hint = suggest(type, names);
              return `unknown plugin type ${JSON.stringify(type)}${hint === undefined ? '' : ` (did you mean ${JSON.stringify(hint)}?)`}; supported types: ${names.join(', ')}`;
            });
          }
          continue;
        }
        const groups = objectsOf(typeEntry.value);
        if (groups.length === 0) {
          ctx.report(
            typeEntry.value.pos,
            typePath,
            `${typePath} must name its plugins: ${type} "name" { … }`,
          );
          continue;
        }
        for (const group of groups) {
          for (const nameEntry of group.entries) {
            const name = nameEntry.key;
            const pluginPath = `${typePath} ${JSON.stringify(name)}`;
            const id = `${type}\u0000${name}`;
            const first = seen.get(id);
            if (first !== undefined) {
              ctx.report(
                nameEntry.keyPos,
                pluginPath,
                `plugin ${type} ${JSON.stringify(name)} is declared more than once (first at line ${String(first.line)})`,
              );
              continue;
            }
            seen.set(id, nameEntry.keyPos);
            const bodies = objectsOf(nameEntry.value);
            if (bodies.length !== 1) {
              ctx.report(
                nameEntry.value.pos,
                pluginPath,
                bodies.length === 0
                  ? `${pluginPath} must be a block ({ … })`
                  : `plugin ${type} ${JSON.stringify(name)} is declared more than once`,
              );
              continue;
            }
            const body = readPluginBody(bodies[0]!.entries, ctx, pluginPath);
            const ref: PluginRef = { type, name, pos: nameEntry.keyPos };
            if (body !== undefined && !body.enabled) {
              disabled.push(ref);
              continue;
            }
            // Counted even when its body is broken, so the count rules add no false complaint.
            const list = declared.get(type);
            if (list === undefined) declared.set(type, [ref]);
            else list.push(ref);
            if (body === undefined) continue;
            const definition = registry.lookup(type, name);
            if (definition === undefined) {
              ctx.report(nameEntry.keyPos, pluginPath, () => {
                const names = registry.plugins(type).map((p) => p.name);
                const hint = suggest(name, names);
                return `unknown plugin ${type} ${JSON.stringify(name)}${hint === undefined ? '' : ` (did you mean ${JSON.stringify(hint)}?)`}; supported ${type} plugins: ${names.join(', ') || 'none'}`;
              });
              continue;
            }
            const data = definition.data.read(
              body.dataEntries,
              ctx,
              joinPath(pluginPath, 'plugin_data'),
              nameEntry.keyPos,
            );
            if (data !== undefined) enabled.push({ type, name, data, pos: nameEntry.keyPos });
          }
        }
      }
      for (const spec of registry.types()) {
        const list = declared.get(spec.type) ?? [];
        const rule = countRule(spec, list.length);
        if (rule === undefined) continue;
        const extra = spec.max !== undefined ? list[spec.max] : undefined;
        const where = extra !== undefined ? extra.pos : blockPos;
        const names =
          list.length > 0
            ? ` (${list.map((r) => `${r.type} "${r.name}" at line ${String(r.pos.line)}`).join(', ')})`
            : '';
        ctx.report(where, joinPath(path, spec.type), `${path}: ${rule}${names}`);
      }
      if (ctx.problemCount !== before) return undefined;
      return { enabled, disabled };
    },
  };
}
