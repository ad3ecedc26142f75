// Fitting text into terminal cells: pad or cut to a width (cut text ends in "…"), and table rows
// built from column widths, so every line the app draws is exactly as wide as the terminal.
export function fit(s: string, width: number): string {
  if (width <= 0) return '';
  const chars = [...s.replace(/[\n\r\t]/g, ' ')];
  if (chars.length <= width) return chars.join('') + ' '.repeat(width - chars.length);
  return chars.slice(0, width - 1).join('') + '…';
}

/** One row: each cell fitted to its width, separated by two spaces; the last cell takes the rest. */
export function row(cells: readonly string[], widths: readonly number[], total: number): string {
  let used = 0;
  const out = cells.map((c, i) => {
    const w = i === cells.length - 1 ? Math.max(0, total - used) : (widths[i] ?? 10);
    used += w + 2;
    return fit(c, w);
  });
  return fit(out.join('  '), total);
}

/** The slice of `count` items to show in `height` lines so that `selected` is visible. */
export function windowAround(count: number, selected: number, height: number): { start: number; end: number } {
  if (count <= height) return { start: 0, end: count };
  const start = Math.min(Math.max(0, selected - Math.floor(height / 2)), count - height);
  return { start, end: start + height };
}

export function human(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** OSC 52: asks the terminal to put `text` on the system clipboard (terminals without it ignore it). */
export function osc52(text: string): string {
  return `\x1b]52;c;${Buffer.from(text, 'utf8').toString('base64')}\x07`;
}
