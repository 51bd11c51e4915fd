"""The providers' error texts, word for word where a real answer could be found.

Microsoft texts come from real token-endpoint answers quoted in public issue threads (cited per
entry) and from learn.microsoft.com/entra/identity-platform/reference-error-codes. Where no real
answer could be found the entry says "unverified". Each message is called with its placeholders
to build the exception that the handlers render.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailgate_emulator.errors import GoogleError, MicrosoftError


@dataclass(frozen=True)
class AadstsMessage:
    """A Microsoft error: AADSTS code, RFC 6749 `error`, text template, HTTP status."""

    code: int
    error: str
    text: str
    status: int = 400

    def __call__(self, **fields: str) -> MicrosoftError:
        """The error to raise, with the template's placeholders filled in."""
        return MicrosoftError(self.code, self.error, self.text.format(**fields), self.status)


@dataclass(frozen=True)
class GoogleMessage:
    """A Google error: RFC 6749 `error`, description template, HTTP status."""

    error: str
    description: str
    status: int = 400

    def __call__(self, **fields: str) -> GoogleError:
        """The error to raise, with the template's placeholders filled in."""
        return GoogleError(self.error, self.description.format(**fields), self.status)


# --- Microsoft: the request itself -------------------------------------------------------------

# n8n-io/n8n#33881, MicrosoftDocs/azure-docs#46110 (also for 'code', 'client_id', 'refresh_token').
MISSING_PARAMETER = AadstsMessage(
    900144,
    "invalid_request",
    "The request body must contain the following parameter: '{parameter}'.",
)
# Azure/azure-cli#22145 (the discovery document answers `invalid_tenant`; the token endpoint
# answered `invalid_request`, microsoftarchive/BatchAI#31).
TENANT_NOT_FOUND = AadstsMessage(
    90002,
    "invalid_request",
    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
    "into the correct cloud. Check with your subscription administrator, this may happen if there "
    "are no active subscriptions for the tenant.",
)
# microsoft/Analysis-Services#194.
TENANT_MALFORMED = AadstsMessage(
    900023,
    "invalid_request",
    "Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain.",
)
# Azure-Samples/ms-identity-python-devicecodeflow#6: a tenant-less request that needs a tenant.
NO_TENANT = AadstsMessage(
    50059,
    "invalid_request",
    "No tenant-identifying information found in either the request or implied by any provided "
    "credentials.",
)
# Unverified text; the code and `unsupported_grant_type` are in the error-code reference.
UNSUPPORTED_GRANT_TYPE = AadstsMessage(
    70003, "unsupported_grant_type", "The app requested an unsupported grant type '{grant_type}'."
)

# --- Microsoft: the client ---------------------------------------------------------------------

# AzureADQuickStarts/AppModelv2-WebApp-OpenIDConnect-DotNet#50.
APPLICATION_NOT_FOUND = AadstsMessage(
    700016,
    "unauthorized_client",
    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can "
    "happen if the application has not been installed by the administrator of the tenant or "
    "consented to by any user in the tenant. You may have sent your authentication request to the "
    "wrong tenant.",
)
# haystackeditor/haystack-editor#41 (HTTP 401, `invalid_client`).
SECRET_MISSING = AadstsMessage(
    7000218,
    "invalid_client",
    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    401,
)
# OfficeDev/microsoft-365-agents-toolkit#8621 (HTTP 401): the secret's ID pasted for its value.
SECRET_INVALID = AadstsMessage(
    7000215,
    "invalid_client",
    "Invalid client secret provided. Ensure the secret being sent in the request is the client "
    "secret value, not the client secret ID, for a secret added to app '{client_id}'.",
    401,
)
# dotnet/sign#849, Budibase/budibase#15843.
SECRET_EXPIRED = AadstsMessage(
    7000222,
    "invalid_client",
    "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to "
    "create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate "
    "credentials for added security: https://aka.ms/certCreds.",
    401,
)
# harishkrupo/oauth2ms#19 (`invalid_client`).
PUBLIC_CLIENT_SENT_SECRET = AadstsMessage(
    700025,
    "invalid_client",
    "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
    401,
)

# --- Microsoft: the grant ----------------------------------------------------------------------

# Azure/azure-cli#14244: "…was inactive for 90.00:00:00." (a .NET TimeSpan).
REFRESH_TOKEN_INACTIVE = AadstsMessage(
    700082,
    "invalid_grant",
    "The refresh token has expired due to inactivity. The token was issued on {issued} and was "
    "inactive for {inactive}.",
)
# microsoft/azuredatastudio#13953.
GRANT_REVOKED = AadstsMessage(
    50173,
    "invalid_grant",
    "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user "
    "might have changed or reset their password. The grant was issued on '{issued}' and the "
    "TokensValidFrom date (before which tokens are not valid) for this user is '{valid_from}'.",
)
# MicrosoftDocs/azure-docs#63819: what a garbage refresh token gets today.
GRANT_MALFORMED = AadstsMessage(
    9002313, "invalid_grant", "Invalid request. Request is malformed or invalid."
)
# BingAds/BingAds-Python-SDK#279: a well-formed refresh token that is no longer (or never was) valid.
REFRESH_TOKEN_INVALID = AadstsMessage(
    70000,
    "invalid_grant",
    "The provided value for the input parameter 'refresh_token' or 'assertion' is not valid.",
)
# abraunegg/onedrive#1370.
CODE_INVALID = AadstsMessage(
    70000, "invalid_grant", "The provided value for the 'code' parameter is not valid."
)
# snok/django-auth-adfs#245.
CODE_EXPIRED = AadstsMessage(
    70008,
    "invalid_grant",
    "The provided authorization code or refresh token has expired due to inactivity. Send a new "
    "interactive authorization request for this user and resource.",
)
# snok/django-auth-adfs#245.
CODE_REDEEMED = AadstsMessage(
    54005,
    "invalid_grant",
    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an "
    "existing refresh token.",
)
# AzureAD/microsoft-authentication-library-for-js#3248.
CODE_VERIFIER_MISMATCH = AadstsMessage(
    501481,
    "invalid_grant",
    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
)
# Text as in the error-code reference ("ConsentRequired"); not seen in a token answer: unverified.
CONSENT_REQUIRED = AadstsMessage(
    65001,
    "invalid_grant",
    "The user or administrator has not consented to use the application with ID '{client_id}' "
    "named '{client_id}'. Send an interactive authorization request for this user and resource.",
)

# The token request's redirect_uri differs from the authorization request's. Code and `error` as
# reported by clients behind proxies ("Entra AADSTS500112 / invalid_client"); the text follows
# the older AADSTS50011 variant (PartnerCenterSamples/Reseller-Web-Application#73): unverified.
CODE_REDIRECT_MISMATCH = AadstsMessage(
    500112,
    "invalid_client",
    "The reply address '{given}' does not match the reply address '{expected}' provided when "
    "requesting Authorization code.",
)

# --- Microsoft: the authorization endpoint (shown on a page, or sent to the redirect URI) -----

# OfficeDev/microsoft-teams-apps-company-communicator#1035, unoplatform/uno.todo#180: a page.
REDIRECT_URI_MISMATCH = AadstsMessage(
    50011,
    "invalid_request",
    "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
    "configured for the application '{client_id}'. Make sure the redirect URI sent in the request "
    "matches one added to your application in the Azure portal. Navigate to "
    "https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
)
# OneDrive/onedrive-sample-apibrowser-dotnet#27.
NO_REPLY_ADDRESS = AadstsMessage(
    500113, "invalid_request", "No reply address is registered for the application."
)
# "AADSTS700051: response_type 'token' is not enabled for the application." is widely reported;
# the same text for other types is unverified.
UNSUPPORTED_RESPONSE_TYPE = AadstsMessage(
    700051,
    "unsupported_response_type",
    "response_type '{response_type}' is not enabled for the application.",
)
# AADSTS90100 is InvalidRequestParameter ("The parameter is empty or not valid") in the
# error-code reference; this wording is unverified.
INVALID_PARAMETER = AadstsMessage(
    90100, "invalid_request", "{parameter} parameter is empty or not valid."
)
# dotnet/aspnetcore and Power Apps troubleshooting pages quote it after prompt=none.
LOGIN_REQUIRED = AadstsMessage(
    50058,
    "login_required",
    "A silent sign-in request was sent but no user is signed in. The cookies used to represent "
    "the user's session were not sent in the request to Azure AD. This can happen if the user is "
    "using Internet Explorer or Edge, and the web app sending the silent sign-in request is in "
    "different IE security zone than the Azure AD endpoint (login.microsoftonline.com).",
)
# As CONSENT_REQUIRED, sent to the redirect URI (`consent_required` is in the auth code flow's
# error table). A real directory first shows a "Need admin approval" page: not emulated.
CONSENT_REQUIRED_REDIRECT = AadstsMessage(
    65001,
    "consent_required",
    "The user or administrator has not consented to use the application with ID '{client_id}' "
    "named '{client_id}'. Send an interactive authorization request for this user and resource.",
)
# MicrosoftDocs/azure-docs#114009: Cancel on "Permissions requested" redirects
# `error=access_denied&error_description=AADSTS65004: User declined to consent to access the
# app.` (MSAL.NET#1736 reports `consent_required` for the same button).
USER_DECLINED_CONSENT = AadstsMessage(
    65004, "access_denied", "User declined to consent to access the app."
)
# The error-code reference: "AADSTS50089 | Authentication failed due to flow token expired."
FLOW_EXPIRED = AadstsMessage(
    50089, "invalid_request", "Authentication failed due to flow token expired."
)

# --- Microsoft: the device code flow ---------------------------------------------------------

# learn.microsoft.com Q&A 981553 (2022) quotes the whole answer.
DEVICE_PENDING = AadstsMessage(
    70016,
    "authorization_pending",
    "The provided request has not yet been authorized by the user. The user must input their code.",
)
# Azure/azure-cli#22251, #22252 (2022); `expired_token` is the documented `error`.
DEVICE_EXPIRED = AadstsMessage(
    70020,
    "expired_token",
    "The provided value for the input parameter 'device_code' is not valid. This device code has "
    "expired.",
)
# `authorization_declined` is documented ("The end user denied the authorization request");
# the AADSTS code and text are unverified.
DEVICE_DECLINED = AadstsMessage(
    65004, "authorization_declined", "User declined to consent to access the app."
)
# `bad_verification_code` is documented ("The device_code sent to the /token endpoint wasn't
# recognized"); code and text are unverified, patterned on AADSTS70020's.
DEVICE_CODE_UNKNOWN = AadstsMessage(
    70000,
    "bad_verification_code",
    "The provided value for the input parameter 'device_code' is not valid.",
)
# A device code already exchanged for tokens: unverified.
DEVICE_CODE_REDEEMED = AadstsMessage(
    70000, "invalid_grant", "The provided value for the input parameter 'device_code' is not valid."
)
# Entra documents no `slow_down`; polling too fast is met by loop detection, "AADSTS50196: The
# server terminated an operation because it encountered a loop while processing a request"
# (MSAL.NET#1495). The emulator answers RFC 8628's `slow_down` with that text: unverified pairing.
DEVICE_SLOW_DOWN = AadstsMessage(
    50196,
    "slow_down",
    "The server terminated an operation because it encountered a loop while processing a request.",
)

# --- Microsoft: scope --------------------------------------------------------------------------

# microsoftgraph/msgraph-sdk-python#181 (`invalid_scope`, databricks/databricks-sql-nodejs#226).
CLIENT_CREDENTIALS_SCOPE = AadstsMessage(
    1002012,
    "invalid_scope",
    "The provided value for scope {scope} is not valid. Client credential flows must have a scope "
    "value with /.default suffixed to the resource identifier (application ID URI).",
)
# Azure/azure-sdk-for-net#9076: two `/.default` scopes in one client-credentials request.
SCOPE_INVALID = AadstsMessage(
    70011,
    "invalid_scope",
    "The provided request must include a 'scope' input parameter. The provided value for the input "
    "parameter 'scope' is not valid. The scope {scope} is not valid.",
)
# microsoft/Partner-Center-PowerShell#167 (the `error` value is unverified).
SCOPE_SEVERAL_RESOURCES = AadstsMessage(
    28000,
    "invalid_scope",
    "Provided value for the input parameter scope is not valid because it contains more than one "
    "resource. Scope {scope} is not valid.",
)

# --- Microsoft: outages ------------------------------------------------------------------------

# Azure/azure-sdk-for-python#14241: HTTP 503 with this body.
TRANSIENT = AadstsMessage(
    90033, "temporarily_unavailable", "A transient error has occurred. Please try again.", 503
)

# --- Google ------------------------------------------------------------------------------------

# porjo/youtubeuploader#181, twentyhq/twenty#18159: revoked, expired (testing status, 7 days).
G_EXPIRED_OR_REVOKED = GoogleMessage("invalid_grant", "Token has been expired or revoked.")
# dolfim/django-gmailapi-backend#14: a refresh token Google has never issued.
G_BAD_REQUEST = GoogleMessage("invalid_grant", "Bad Request")
# Unverified text.
G_MALFORMED_CODE = GoogleMessage("invalid_grant", "Malformed auth code.")
# Unverified texts (PKCE).
G_MISSING_VERIFIER = GoogleMessage("invalid_grant", "Missing code verifier.")
G_INVALID_VERIFIER = GoogleMessage("invalid_grant", "Invalid code verifier.")
# erebusnz/gapi-google-analytics-php-interface#149 (HTTP 401).
G_CLIENT_NOT_FOUND = GoogleMessage("invalid_client", "The OAuth client was not found.", 401)
# adrielcafe/AndroidOAuth#2, teranetsrl/oauth2_client#145 (HTTP 401): wrong secret.
G_CLIENT_UNAUTHORIZED = GoogleMessage("invalid_client", "Unauthorized", 401)
# Unverified: a refresh token used by a client other than the one it was issued to.
G_UNAUTHORIZED_CLIENT = GoogleMessage("unauthorized_client", "Unauthorized", 401)
# Unverified texts.
G_SECRET_MISSING = GoogleMessage("invalid_request", "client_secret is missing.")
G_NO_CLIENT_ID = GoogleMessage("invalid_request", "Could not determine client ID from request.")
# googleads/google-ads-dotnet#400.
G_MISSING_PARAMETER = GoogleMessage("invalid_request", "Missing required parameter: {parameter}")
# android/play-billing-samples#471 ("Invalid grant_type: password").
G_UNSUPPORTED_GRANT_TYPE = GoogleMessage(
    "unsupported_grant_type", "Invalid grant_type: {grant_type}"
)
# Unverified text.
G_INVALID_SCOPE = GoogleMessage(
    "invalid_scope", "Some requested scopes were invalid. {{invalid=[{scopes}]}}"
)
# The revocation endpoint's answer for an unknown or already revoked token (unverified text).
G_REVOKE_INVALID_TOKEN = GoogleMessage("invalid_token", "Token expired or revoked")
# The token request's redirect_uri differs from the authorization request's (reported).
G_REDIRECT_URI_MISMATCH = GoogleMessage("redirect_uri_mismatch", "Bad Request")

# --- Google: the device flow (developers.google.com/identity/protocols/oauth2/limited-input-device)

G_DEVICE_PENDING = GoogleMessage("authorization_pending", "Precondition Required", 428)
G_DEVICE_SLOW_DOWN = GoogleMessage("slow_down", "Forbidden", 403)
G_DEVICE_DENIED = GoogleMessage("access_denied", "Forbidden", 403)
# Not in Google's page; as reported by clients' fixtures (unverified).
G_DEVICE_EXPIRED = GoogleMessage("expired_token", "Bad Request")
# hickford/git-credential-oauth#38: a scope outside the device flow's allowed list.
G_DEVICE_SCOPE = GoogleMessage("invalid_scope", "Invalid device flow scope: {scope}")
