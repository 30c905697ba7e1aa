/**
 * Picks the backend for a store URL, wrapped for retry (retryingBackend.ts):
 *   /path, ./path, file:///path      a folder (a bare store, or <dir>/.ckpt when present)
 *   http(s)://host:port/<repo>       storeServer (`ckpt serve`)
 *   s3://bucket/prefix               S3 or an S3-compatible server
 */
import * as path from 'node:path';
import { UsageError } from '../core/errors.js';
import { openLocalBackend, type LocalBackendOptions } from './localBackend.js';
import { HttpBackend, type HttpBackendOptions } from './httpBackend.js';
import type { S3BackendOptions } from './s3Backend.js';
import type { Backend } from './backend.js';
import { RetryingBackend, type RetryOptions } from './retryingBackend.js';

export interface OpenBackendOptions {
  /** Relative directory paths resolve against this (default process.cwd()). */
  cwd?: string;
  directory?: LocalBackendOptions;
  http?: HttpBackendOptions;
  s3?: S3BackendOptions;
  retry?: RetryOptions;
}

export async function openBackend(url: string, options: OpenBackendOptions = {}): Promise<Backend> {
  return new RetryingBackend(await openDriver(url, options), options.retry);
}

/** The driver alone, not wrapped for retry. */
export async function openDriver(url: string, options: OpenBackendOptions = {}): Promise<Backend> {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case undefined:
      if (url === '') throw new UsageError('empty remote URL');
      return openLocalBackend(path.resolve(options.cwd ?? process.cwd(), url), options.directory);
    case 'file':
      return openLocalBackend(url, options.directory);
    case 'http':
    case 'https':
      return new HttpBackend(url, options.http);
    case 's3': {
      // the AWS SDK takes a noticeable part of a second to load: only S3 remotes pay for it
      const { S3Backend } = await import('./s3Backend.js');
      return new S3Backend(url, options.s3);
    }
    default:
      throw new UsageError(`unsupported remote URL scheme ${scheme}:// in ${url} (use a path, file://, http(s):// or s3://)`);
  }
}
