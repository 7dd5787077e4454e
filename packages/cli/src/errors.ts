import { WmeshError } from '@wmesh/core'

/** `wmesh init` would overwrite files that already exist (and `--force` was not given). */
export class FileExistsError extends WmeshError {
  override readonly code = 'ERR_FILE_EXISTS'
}

/** A command line the CLI cannot act on (beyond what the argument parser catches). */
export class UsageError extends WmeshError {
  override readonly code = 'ERR_USAGE'
}

/** `ask-result` found nothing stored under the key. */
export class NoResultError extends WmeshError {
  override readonly code = 'ERR_NO_RESULT'
}
