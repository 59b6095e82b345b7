// Small helpers for inline SVG built as strings (the pipeline picture, the bench report's charts).

export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function svgDoc(width: number, height: number, body: string, label: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(label)}" font-family="system-ui, sans-serif" font-size="11">${body}</svg>`;
}

export function text(x: number, y: number, s: string | number, attrs = ''): string {
  return `<text x="${x}" y="${y}" ${attrs}>${esc(s)}</text>`;
}

export function rect(x: number, y: number, w: number, h: number, fill: string, attrs = ''): string {
  return `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="${fill}" ${attrs}/>`;
}
