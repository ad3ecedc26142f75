// Just enough types for the parts of oidc-provider 8 that the dev IdP uses. The package ships no
// types and @types/oidc-provider is not a dependency; if it becomes one, delete this file.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** The Koa context as oidc-provider hands it to configuration callbacks and middleware. */
  export interface ProviderContext {
    method: string;
    path: string;
    status: number;
    type: string;
    body: unknown;
    oidc: {
      readonly route?: string;
      readonly result?: { login?: { accountId: string }; consent?: { grantId?: string } };
      readonly client?: { clientId: string; clientName?: string };
    };
  }

  export type Middleware = (ctx: ProviderContext, next: () => Promise<void>) => Promise<void>;

  export interface ClaimsAccount {
    accountId: string;
    claims(use: string, scope: string): Promise<Record<string, unknown>> | Record<string, unknown>;
  }

  export interface ResourceServerInfo {
    audience: string;
    scope: string;
    accessTokenFormat: 'jwt' | 'opaque';
    accessTokenTTL?: number;
    jwt?: { sign?: { alg: string } };
  }

  /** Persistence contract of oidc-provider (see its docs: "adapter"). */
  export interface Adapter {
    upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void>;
    find(id: string): Promise<AdapterPayload | undefined>;
    findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
    findByUid(uid: string): Promise<AdapterPayload | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  export interface AdapterPayload {
    [key: string]: unknown;
    grantId?: string;
    userCode?: string;
    uid?: string;
    consumed?: number;
  }

  export class Check {
    constructor(
      reason: string,
      description: string,
      check: (ctx: ProviderContext) => boolean | Promise<boolean>,
    );
    static readonly REQUEST_PROMPT: true;
    static readonly NO_NEED_TO_PROMPT: false;
  }

  export interface Prompt {
    name: string;
    checks: { add(check: Check, index?: number): void };
  }

  export interface Policy extends Array<Prompt> {
    get(name: string): Prompt | undefined;
  }

  export const interactionPolicy: {
    base(): Policy;
    Check: typeof Check;
  };

  export const errors: {
    InvalidTarget: new (description?: string) => Error;
  };

  export interface Configuration {
    [key: string]: unknown;
    adapter?: (name: string) => Adapter;
    findAccount?: (ctx: ProviderContext, sub: string) => Promise<ClaimsAccount | undefined>;
    extraTokenClaims?: (
      ctx: ProviderContext,
      token: { kind: string; accountId?: string },
    ) => Promise<Record<string, unknown> | undefined>;
    renderError?: (ctx: ProviderContext, out: Record<string, string>, error: Error) => Promise<void>;
  }

  export interface Interaction {
    uid: string;
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    params: Record<string, unknown>;
    session?: { accountId?: string };
    grantId?: string;
  }

  export interface InteractionResults {
    login?: { accountId: string };
    consent?: { grantId: string };
  }

  export class Grant {
    constructor(properties: { accountId: string; clientId: string });
    static find(id: string): Promise<Grant | undefined>;
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    addResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
  }

  export class DeviceCode {
    static findByUserCode(
      userCode: string,
      options?: { ignoreExpiration?: boolean },
    ): Promise<DeviceCode | undefined>;
    readonly clientId: string;
    readonly isExpired: boolean;
    readonly params: { scope?: string; [key: string]: unknown };
    accountId?: string;
    error?: string;
    grantId?: string;
    authTime?: number;
    scope?: string;
    resource?: string | string[];
    save(): Promise<string>;
  }

  export class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    readonly Grant: typeof Grant;
    readonly DeviceCode: typeof DeviceCode;
    callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    use(middleware: Middleware): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResults,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
  }

  export default Provider;
}
