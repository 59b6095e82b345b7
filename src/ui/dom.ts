// Tiny DOM helpers: the page is plain TypeScript, no framework.

type Child = Node | string | null | undefined | false;

/** Creates an element with attributes (strings; `class` included) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) if (c) e.append(c);
  return e;
}

/** The element with this id, checked to be of the expected class. */
export function byId<T extends HTMLElement>(id: string, type: { new (): T; prototype: T }): T {
  const e = document.getElementById(id);
  if (!(e instanceof type)) throw new Error(`page is missing #${id}`);
  return e;
}

