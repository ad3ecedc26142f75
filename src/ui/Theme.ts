// Colours, or none when NO_COLOR is set (https://no-color.org): every component asks here rather
// than naming a colour, and selection is also marked with "›" so it reads without colour.
import { createContext, useContext } from 'react';

export interface Theme {
  accent?: string;
  ok?: string;
  warn?: string;
  error?: string;
  dim: boolean;
}

export const colourTheme: Theme = { accent: 'cyan', ok: 'green', warn: 'yellow', error: 'red', dim: true };
export const plainTheme: Theme = { dim: false };

export const ThemeContext = createContext<Theme>(colourTheme);

export function useTheme(): Theme {
  return useContext(ThemeContext);
}
