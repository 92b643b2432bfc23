/**
 * The service hooks surface: the REST routes of subscriptions (`/{organization}/_apis/hooks/subscriptions`,
 * behind the service's pipeline like every route of `service-api.ts`) and the control routes of deliveries
 * (`/_sim/hooks/...`: delay, injected failures, the list of attempts). The subscriptions and deliveries themselves
 * live in `hook-delivery.ts`.
 */
import type { IncomingMessage } from "node:http";
import { Type } from "@sinclair/typebox";
import { subscriptionNotFound } from "./errors.ts";
import type { HookDeliverySettings, SubscriptionInput } from "./hooks.ts";
import { subscriptionView } from "./hooks.ts";
import { type HttpContext, intParam, list, ok, param, type Reply, readBody } from "./http.ts";
import { type Route, type RouteContext, route } from "./service-api.ts";

const StringMap = Type.Record(Type.String(), Type.String());

/** A subscription as a client sends it; the fields the service fills in (`id`, `url`, `status`, ...) are ignored. */
const SubscriptionBody = Type.Object({
  publisherId: Type.String(),
  eventType: Type.String(),
  resourceVersion: Type.Optional(Type.String()),
  consumerId: Type.String(),
  consumerActionId: Type.String(),
  publisherInputs: Type.Optional(StringMap),
  consumerInputs: StringMap,
});

const subscriptions = "_apis/hooks/subscriptions";

const subscriptionOf = (rc: RouteContext) => {
  const id = rc.params[0] as string;
  const found = rc.ctx.control.hooks.subscription(id);
  if (!found) throw subscriptionNotFound(id);
  return found;
};

const sameText = (filter: string | undefined, value: string) =>
  filter === undefined || filter === "" || filter.toLowerCase() === value.toLowerCase();

export const hookRoutes: Route[] = [
  route("GET", subscriptions, "read", "list service hook subscriptions", (rc) => {
    const publisherId = param(rc.url, "publisherId");
    const eventType = param(rc.url, "eventType");
    const consumerId = param(rc.url, "consumerId");
    const consumerActionId = param(rc.url, "consumerActionId");
    const found = rc.ctx.control.hooks
      .subscriptions()
      .filter(
        (s) =>
          sameText(publisherId, s.publisherId) &&
          sameText(eventType, s.eventType) &&
          sameText(consumerId, s.consumerId) &&
          sameText(consumerActionId, s.consumerActionId),
      );
    return { status: 200, body: list(found.map((s) => subscriptionView(s, rc.view.organizationUrl))) };
  }),

  route("POST", subscriptions, "manage", "create a service hook subscription", async (rc) => {
    const body = (await readBody(rc.req, "subscription", SubscriptionBody)) as SubscriptionInput;
    const created = rc.ctx.control.hooks.createSubscription(body, {
      id: rc.identity.id,
      displayName: rc.identity.displayName,
    });
    return { status: 200, body: subscriptionView(created, rc.view.organizationUrl) };
  }),

  route("GET", `${subscriptions}/{subscriptionId}`, "read", "read a service hook subscription", (rc) => ({
    status: 200,
    body: subscriptionView(subscriptionOf(rc), rc.view.organizationUrl),
  })),

  route("DELETE", `${subscriptions}/{subscriptionId}`, "manage", "delete a service hook subscription", (rc) => {
    rc.ctx.control.hooks.deleteSubscription(subscriptionOf(rc).id);
    return { status: 204 };
  }),
];

// ---- the control API of service hooks (/_sim/hooks/...)

const DeliveryBody = Type.Object(
  {
    delayMs: Type.Optional(Type.Number({ minimum: 0 })),
    failNext: Type.Optional(Type.Integer({ minimum: 0 })),
    failureRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    seed: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
    timeoutMs: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  },
  { additionalProperties: false },
);

export async function hooksControlRoute(
  ctx: HttpContext,
  req: IncomingMessage,
  method: string,
  url: URL,
  parts: string[],
): Promise<Reply> {
  const hooks = ctx.control.hooks;
  const key = `${method} ${parts.join("/")}`;
  switch (key) {
    case "GET ":
      return ok({
        delivery: hooks.settings(),
        pending: hooks.pending,
        deliveries: hooks.deliveries().length,
        subscriptions: hooks.subscriptions().map((s) => subscriptionView(s, ctx.organizationUrl())),
      });
    case "GET delivery":
      return ok(hooks.settings());
    case "PUT delivery": {
      const body = await readBody(req, "delivery", DeliveryBody, { keepNulls: true });
      return ok(hooks.configure(body as Partial<HookDeliverySettings>));
    }
    case "GET deliveries": {
      const since = intParam(url, "since");
      const subscriptionId = param(url, "subscriptionId");
      return ok(
        list(
          hooks.deliveries({
            ...(since === undefined ? {} : { since }),
            ...(subscriptionId === undefined ? {} : { subscriptionId }),
          }),
        ),
      );
    }
    case "DELETE deliveries":
      hooks.clearDeliveries();
      return ok({ cleared: true });
    default:
      return ok({ message: `no control endpoint ${method} ${url.pathname}; see the README` }, 404);
  }
}
