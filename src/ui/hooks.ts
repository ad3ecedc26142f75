// The two hooks every component uses: read an external store, and the terminal's size (updated on
// resize, so the layout reflows).
import { useStdout } from 'ink';
import { useEffect, useState, useSyncExternalStore } from 'react';

export interface Readable<S> {
  subscribe(listener: () => void): () => void;
  getSnapshot(): S;
}

export function useStore<S>(store: Readable<S>): S {
  return useSyncExternalStore(store.subscribe, store.getSnapshot);
}

export const MIN_COLUMNS = 80;
export const MIN_ROWS = 24;

/** Columns and rows of the terminal, never below 80×24 (the smallest size the layout is made for). */
export function useDimensions(): { columns: number; rows: number } {
  const { stdout } = useStdout();
  const read = () => ({ columns: Math.max(MIN_COLUMNS, stdout.columns || MIN_COLUMNS), rows: Math.max(MIN_ROWS, stdout.rows || MIN_ROWS) });
  const [size, setSize] = useState(read);
  useEffect(() => {
    const onResize = () => setSize(read());
    stdout.on('resize', onResize);
    return () => void stdout.off('resize', onResize);
  }, [stdout]);
  return size;
}
