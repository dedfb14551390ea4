// The protocol's public surface: both directions of every wire concept (see each module). Helpers
// that serve one side only (reply tokens, URL redaction, the decimal parser) stay in their modules.
export { BITS_METHOD, BITS_PROTOCOL_GUID, Header, MAX_BITS_HEADER_VALUE, MAX_REPLY_URL, MAX_SESSION_ID_LENGTH, PacketType, USER_AGENT, WireHeader } from './constants.js';
export type { RequestPacketType } from './constants.js';
export { ErrorContext, HResult, errorContextName, formatErrorContext, formatHresult, hresultName, parseHresult } from './hresult.js';
export { ClientHResult, clientHresultName } from './client-hresults.js';
export * from './errors.js';
export { formatContentRange, formatRangeRequest, fragmentRange, parseContentRange, parseResponseRange } from './content-range.js';
export type { FragmentRange, ResponseRange } from './content-range.js';
export { chooseProtocol, packetTypeOf, parsePacket } from './packet.js';
export type { CancelSessionPacket, CloseSessionPacket, CreateSessionPacket, FragmentPacket, HeaderMap, Packet, PingPacket } from './packet.js';
export { formatPacket } from './request-packet.js';
export type { FormattedPacket } from './request-packet.js';
export { errorAck, okAck } from './ack.js';
export type { Ack, AckFields } from './ack.js';
export { readAck } from './ack-info.js';
export type { AckInfo } from './ack-info.js';
export { matchReplyPath, replyUrl, resolveReplyUrl } from './reply-url.js';
export type { ReplyPath } from './reply-url.js';
export { hostIdUrl } from './host-id.js';
export { newSessionId, sessionKey } from './session-id.js';
