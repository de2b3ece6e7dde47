// Reload when the config file changes. The directory is watched rather than the file: editors and
// ConfigMap updates replace the file (write elsewhere, then rename), which a watch on the old inode
// would never see. Events are debounced; the reloader skips content it has already loaded.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface ConfigWatch {
  close(): void;
}

/** Names whose change may mean a new config: the file itself, and Kubernetes' `..data` symlink swap. */
function relevant(file: string, changed: string | null): boolean {
  return changed === null || changed === basename(file) || changed === '..data';
}

export function watchConfigFile(file: string, onChange: () => void, debounceMs = 300, onError?: (err: Error) => void): ConfigWatch {
  let timer: NodeJS.Timeout | null = null;
  let watcher: FSWatcher | null = watch(dirname(file), { persistent: false }, (_event, name) => {
    if (!relevant(file, name === null ? null : String(name))) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onChange();
    }, debounceMs);
    timer.unref();
  });
  watcher.on('error', (err) => onError?.(err));
  return {
    close() {
      if (timer) clearTimeout(timer);
      watcher?.close();
      watcher = null;
    },
  };
}
