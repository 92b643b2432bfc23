/**
 * Errors the way the service reports them: an HTTP status plus a JSON body
 * `{ "$id": "1", "innerException": null, "message", "typeName", "typeKey", "errorCode": 0, "eventId": 3000 }`.
 * The engine throws ServiceError; the HTTP layer turns it into that body.
 */

const dtAssembly = "Microsoft.TeamFoundation.DistributedTask.WebApi";
const vssAssembly = "Microsoft.VisualStudio.Services.WebApi";

export class ServiceError extends Error {
  readonly status: number;
  readonly typeKey: string;
  readonly typeName: string;
  /** Extra detail for the emulator's request log; never sent to the client. */
  readonly detail: string | undefined;

  constructor(status: number, typeKey: string, message: string, options: { typeName?: string; detail?: string } = {}) {
    super(message);
    this.name = "ServiceError";
    this.status = status;
    this.typeKey = typeKey;
    this.typeName = options.typeName ?? `${dtAssembly}.${typeKey}, ${dtAssembly}`;
    this.detail = options.detail;
  }
}

export interface ServiceErrorBody {
  $id: "1";
  innerException: null;
  message: string;
  typeName: string;
  typeKey: string;
  errorCode: number;
  eventId: number;
}

export function errorBody(error: ServiceError): ServiceErrorBody {
  return {
    $id: "1",
    innerException: null,
    message: error.message,
    typeName: error.typeName,
    typeKey: error.typeKey,
    errorCode: 0,
    eventId: 3000,
  };
}

// The errors the emulator raises, named once so the engine and the HTTP layer agree.

export const poolNotFound = (poolId: number | string) =>
  new ServiceError(404, "TaskAgentPoolNotFoundException", `Agent pool ${poolId} could not be found.`);

export const agentNotFound = (poolId: number, agentId: number | string) =>
  new ServiceError(404, "TaskAgentNotFoundException", `Agent ${agentId} could not be found in pool ${poolId}.`);

export const agentExists = (name: string, poolName: string) =>
  new ServiceError(409, "TaskAgentExistsException", `An agent named ${name} already exists in pool ${poolName}.`);

export const agentBusy = (name: string, requestId: number) =>
  new ServiceError(
    400,
    "TaskAgentJobStillRunningException",
    `The agent ${name} cannot be deleted because it is running job request ${requestId}. Try again after the job has finished.`,
  );

export const jobRequestNotFound = (requestId: number | string) =>
  new ServiceError(404, "TaskAgentJobNotFoundException", `No job request found with ID ${requestId}.`);

export const jobLockExpired = (requestId: number) =>
  new ServiceError(
    400,
    "TaskAgentJobTokenExpiredException",
    `The lock on job request ${requestId} is not held by an agent anymore.`,
  );

export const sessionConflict = (agentName: string) =>
  new ServiceError(409, "TaskAgentSessionConflictException", `A session for agent ${agentName} already exists.`);

export const sessionExpired = (sessionId: string) =>
  new ServiceError(404, "TaskAgentSessionExpiredException", `The session ${sessionId} has expired or does not exist.`);

export const agentNotAuthorized = (agentName: string) =>
  new ServiceError(
    400,
    "TaskAgentAccessTokenExpiredException",
    `Agent ${agentName} was registered without authorization (no public key) and cannot connect.`,
  );

/** What the service answers for a body it cannot bind (malformed JSON, wrong types, missing body). */
export const argumentNull = (parameter: string, detail?: string) =>
  new ServiceError(400, "ArgumentNullException", `Value cannot be null.\r\nParameter name: ${parameter}`, {
    typeName: "System.ArgumentNullException, mscorlib",
    ...(detail === undefined ? {} : { detail }),
  });

export const argumentInvalid = (message: string, detail?: string) =>
  new ServiceError(400, "ArgumentException", message, {
    typeName: "System.ArgumentException, mscorlib",
    ...(detail === undefined ? {} : { detail }),
  });

export const apiVersionMissing = (method: string) =>
  new ServiceError(
    400,
    "VssVersionNotSpecifiedException",
    `No api-version was supplied for the ${method} request. The version must be supplied either as part of the Accept header (e.g. "application/json; api-version=1.0") or as a query parameter (e.g. "?api-version=1.0").`,
    { typeName: `Microsoft.VisualStudio.Services.WebApi.VssVersionNotSpecifiedException, ${vssAssembly}` },
  );

export const apiVersionInvalid = (value: string) =>
  new ServiceError(400, "VssInvalidApiVersionException", `The api-version '${value}' is not valid.`, {
    typeName: `Microsoft.VisualStudio.Services.WebApi.VssInvalidApiVersionException, ${vssAssembly}`,
  });

export const resourceNotFound = (path: string) =>
  new ServiceError(404, "VssResourceNotFoundException", `The resource ${path} could not be found.`, {
    typeName: `Microsoft.VisualStudio.Services.WebApi.VssResourceNotFoundException, ${vssAssembly}`,
  });

export const methodNotAllowed = (method: string, path: string) =>
  new ServiceError(405, "VssMethodNotAllowedException", `The requested resource ${path} does not support ${method}.`, {
    typeName: `Microsoft.VisualStudio.Services.WebApi.VssMethodNotAllowedException, ${vssAssembly}`,
  });

export const accessDenied = (identity: string, action: string) =>
  new ServiceError(
    403,
    "AccessCheckException",
    `Access denied. ${identity} needs Manage permissions to perform this action: ${action}. For more information, contact the Azure DevOps Server administrator.`,
    {
      typeName:
        "Microsoft.TeamFoundation.Framework.Server.AccessCheckException, Microsoft.TeamFoundation.Framework.Server",
    },
  );

export const requestBlocked = (resource: string) =>
  new ServiceError(
    429,
    "RequestBlockedException",
    `TF400733: Request was blocked due to exceeding usage of resource '${resource}' in namespace 'User'. For more information on why your request was blocked, see the topic "Rate limits" on the Microsoft Web site.`,
    {
      typeName:
        "Microsoft.TeamFoundation.Framework.Server.RequestBlockedException, Microsoft.TeamFoundation.Framework.Server",
    },
  );

export const injectedFault = (status: number) =>
  new ServiceError(
    status,
    "InjectedFaultException",
    `TF400898: An internal error occurred (fault injected by the emulator).`,
    {
      typeName: `Microsoft.VisualStudio.Services.Common.VssServiceException, ${vssAssembly}`,
    },
  );

export const internalError = (detail: string) =>
  new ServiceError(500, "VssServiceException", "TF400898: An Internal Error Occurred.", {
    typeName: `Microsoft.VisualStudio.Services.Common.VssServiceException, ${vssAssembly}`,
    detail,
  });

export const subscriptionNotFound = (id: string) =>
  new ServiceError(404, "SubscriptionNotFoundException", `The service hook subscription ${id} could not be found.`, {
    typeName:
      "Microsoft.VisualStudio.Services.ServiceHooks.WebApi.SubscriptionNotFoundException, Microsoft.VisualStudio.Services.ServiceHooks.WebApi",
  });
