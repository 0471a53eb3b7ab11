/**
 * How a node sends its announces (the last sequence number of a URI it
 * published to): a PUB with the ANNOUNCE flag, an empty payload and the
 * number, on the live connection only. Never buffered offline: an announce
 * that waited could arrive after numbers it does not know about.
 */
import { ContentType, PubFlag, packPubHeader } from '../protocol/frames.js';
import type { NodeChannel } from './channel.js';
import type { AnnounceSender } from './gaps.js';

const EMPTY = Buffer.alloc(0);

export function announceSender(channel: () => NodeChannel): AnnounceSender {
  return (uri, seq) => {
    const c = channel();
    // A dispatcher without stream ids (no resume token) would deliver it as a message.
    if (!c.isOpen || c.welcome === null || c.welcome.resume === null) return false;
    const flags = PubFlag.ANNOUNCE;
    try {
      c.publish(
        uri,
        flags,
        ContentType.EMPTY,
        EMPTY,
        packPubHeader(uri, flags, 0, ContentType.EMPTY, null, seq),
        seq,
        null,
      );
    } catch {
      return false; // BUFFER_FULL: the next interval tries again
    }
    return true;
  };
}
