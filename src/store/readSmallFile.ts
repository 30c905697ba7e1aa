/**
 * A whole small file, through the callback readFile: for thousands of small objects (du, gc, log
 * over a long history, an index file per pack) several times cheaper than fs.promises.readFile,
 * whose FileHandle costs more than the read itself.
 */
import { readFile } from 'node:fs';
import { promisify } from 'node:util';

export const readSmallFile: (file: string) => Promise<Buffer> = promisify(readFile);
