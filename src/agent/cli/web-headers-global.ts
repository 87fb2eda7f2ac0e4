/**
 * Side effect only: installs spire-edge's `Headers` as the global one (src/common/web-headers.ts)
 * before connect is loaded, so that the agent never loads Node's fetch implementation. The
 * first import of the agent's entry point (main.ts).
 */
import { installWebHeaders } from '../../common/web-headers.js';

installWebHeaders();
