/** Get-or-make for the renderer's memo tables (Map or WeakMap). */

/** The part of Map and WeakMap a memo table needs. */
interface Table<K, V> {
  get(key: K): V | undefined;
  set(key: K, value: V): unknown;
}

/** What `table` holds for `key`; made by `make()` and kept there the first time. */
export function getOrMake<K, V>(table: Table<K, V>, key: K, make: () => V): V {
  let value = table.get(key);
  if (value === undefined) {
    value = make();
    table.set(key, value);
  }
  return value;
}
