// ES module entry of the channelbus browser client: import { Bus } from "/static/channelbus/channelbus.mjs".
// channelbus.js is the classic script that holds the code and sets globalThis.channelbus; this wrapper
// loads it once for that side effect and re-exports what it defines.
import "./channelbus.js";

const channelbus = globalThis.channelbus;
export const {
  Bus, BusError, BoundedQueue, Position, backoffDelay, expandBatch, PROTOCOL, NO_RECONNECT_CODES,
  applyDomAction, unsafeAttribute, formPayload, fieldNames, showErrors, clearErrors, BOUND_EVENTS,
} = channelbus;
/** The page's bus, started by {% channelbus_client %} (null without its configuration element). */
export const bus = channelbus.bus;
export default channelbus;
