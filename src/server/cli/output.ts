/**
 * `-output json` for the server commands: the response message in SPIRE's JSON form (see
 * {@link protoToGoJson}) and a newline, on stdout.
 */
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { protoToGoJson } from '../../common/cli/go-json.js';
import type { CliIo } from '../../common/cli/io.js';

/** Writes `message` as one line of SPIRE-compatible JSON on stdout. */
export function writeProtoJson<Desc extends DescMessage>(
  io: CliIo,
  schema: Desc,
  message: MessageShape<Desc>,
): void {
  io.stdout.write(`${protoToGoJson(schema, message)}\n`);
}
