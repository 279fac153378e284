// Lets xterm.js draw under airmeshd's strict Content-Security-Policy (style-src 'self', no
// 'unsafe-inline'). xterm's DOM renderer writes styles two ways that policy refuses:
//   1. <style> elements whose text it sets (theme colours, font, row layout, scrollbar), and
//   2. setAttribute('style', ...) on cells drawn in 24-bit colour.
// CSP governs neither constructable stylesheets (CSSOM) nor element.style, so both are
// redirected there: a request for a <style> element gets an inert <template> whose text goes
// into a CSSStyleSheet adopted by its document (Chrome reports even an empty <style> as a
// violation), and a style attribute becomes element.style.cssText. The rules xterm writes are
// scoped to its own terminal element, so nothing else is affected.
// Our own code never sets inline styles; install() runs once, before any terminal exists.

const sheets = new Map<HTMLStyleElement, { sheet: CSSStyleSheet; doc: Document; fresh: boolean }>();
let installed = false;

export function install(): void {
  if (installed || typeof CSSStyleSheet === 'undefined' || !('adoptedStyleSheets' in Document.prototype)) return;
  installed = true;

  const createElement = Document.prototype.createElement;
  Document.prototype.createElement = function (this: Document, tag: string, options?: ElementCreationOptions) {
    if (tag.toLowerCase() !== 'style') return createElement.call(this, tag, options);
    const el = createElement.call(this, 'template') as unknown as HTMLStyleElement;
    redirect(el, this);
    return el;
  } as typeof Document.prototype.createElement;

  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (this: Element, name: string, value: string) {
    if (name.toLowerCase() === 'style' && this instanceof HTMLElement) {
      this.style.cssText = String(value);
      return;
    }
    setAttribute.call(this, name, value);
  };
}

function redirect(el: HTMLStyleElement, doc: Document): void {
  const entry = { sheet: new CSSStyleSheet(), doc, fresh: true };
  sheets.set(el, entry);
  doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, entry.sheet];
  setTimeout(() => (entry.fresh = false), 0);
  let text = '';
  const accessor = {
    configurable: true,
    get: () => text,
    set: (v: unknown) => {
      text = v === null || v === undefined ? '' : String(v);
      entry.sheet.replaceSync(text);
    },
  };
  Object.defineProperty(el, 'textContent', accessor);
  Object.defineProperty(el, 'innerText', accessor);
  const remove = el.remove.bind(el);
  el.remove = () => {
    remove();
    drop(el);
  };
}

function drop(el: HTMLStyleElement): void {
  const e = sheets.get(el);
  if (!e) return;
  sheets.delete(el);
  e.doc.adoptedStyleSheets = e.doc.adoptedStyleSheets.filter((s) => s !== e.sheet);
}

/** Forget the sheets of style elements no longer in a document (call after disposing a terminal). */
export function prune(): void {
  for (const [el, e] of sheets) if (!e.fresh && !el.isConnected) drop(el);
}
