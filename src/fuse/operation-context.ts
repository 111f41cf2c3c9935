// What every FUSE operation handler works with: the source, the mount options, the nodes and the replies.
import type { KernelNodes } from './kernel-nodes.ts';
import type { FuseMountOptions } from './options.ts';
import type { ReplyWriter } from './reply-writer.ts';
import type { FileSource } from './source.ts';

export interface OperationContext {
  source: FileSource;
  options: FuseMountOptions;
  nodes: KernelNodes;
  writer: ReplyWriter;
  /** A new file or directory handle (`fh`); files and directories share one sequence. */
  nextHandle: () => bigint;
}
