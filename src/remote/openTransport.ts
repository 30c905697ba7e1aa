/**
 * Picks the transport for a remote URL:
 *   /path, ./path, file:///path      directory (a bare store, or <dir>/.ckpt when present)
 *   http(s)://host:port/<repo>       storeServer
 *   s3://bucket/prefix               S3 or an S3-compatible server
 */
import * as path from 'node:path';
import { UsageError } from '../core/errors.js';
import { openDirectoryTransport, type DirectoryTransportOptions } from './directoryTransport.js';
import { HttpTransport, type HttpTransportOptions } from './httpTransport.js';
import type { S3TransportOptions } from './s3Transport.js';
import type { Transport } from './transport.js';

export interface OpenTransportOptions {
  /** Relative directory paths resolve against this (default process.cwd()). */
  cwd?: string;
  directory?: DirectoryTransportOptions;
  http?: HttpTransportOptions;
  s3?: S3TransportOptions;
}

export async function openTransport(url: string, options: OpenTransportOptions = {}): Promise<Transport> {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case undefined:
      if (url === '') throw new UsageError('empty remote URL');
      return openDirectoryTransport(path.resolve(options.cwd ?? process.cwd(), url), options.directory);
    case 'file':
      return openDirectoryTransport(url, options.directory);
    case 'http':
    case 'https':
      return new HttpTransport(url, options.http);
    case 's3': {
      // the AWS SDK takes a noticeable part of a second to load: only S3 remotes pay for it
      const { S3Transport } = await import('./s3Transport.js');
      return new S3Transport(url, options.s3);
    }
    default:
      throw new UsageError(`unsupported remote URL scheme ${scheme}:// in ${url} (use a path, file://, http(s):// or s3://)`);
  }
}
