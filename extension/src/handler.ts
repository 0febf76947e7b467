/**
 * The one door to the server side: every call of the panel goes through `requestAPI`,
 * which adds the base URL, the token and the XSRF cookie Jupyter expects.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The namespace of the nbfeatures server extension's routes. */
export const API_NAMESPACE = 'nbfeatures/api';

/** A failed call, with what was asked and the server's own message. */
export class APIError extends Error {
  constructor(
    readonly endPoint: string,
    readonly status: number | null,
    message: string
  ) {
    super(message);
    this.name = 'APIError';
  }
}

/** The full URL of an endpoint under the namespace (for iframes and links). */
export function apiURL(endPoint: string): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
}

/**
 * Call an endpoint and return its JSON body.
 *
 * Errors carry the server's `{"message"}` when it sent one, else the HTTP status, so the
 * panel can say what failed without guessing.
 */
export async function requestAPI<T>(endPoint = '', init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  const what = `${init.method ?? 'GET'} ${endPoint}`;
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new APIError(
      endPoint,
      null,
      `${what}: the Jupyter server could not be reached (${String(error)})`
    );
  }
  const text = await response.text();
  let data: unknown = null;
  let isJSON = false;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
      isJSON = true;
    } catch {
      // Jupyter's own HTML error page: its text says nothing about our route.
    }
  }
  if (!response.ok) {
    let message = response.statusText || 'no message';
    if (isJSON && data && typeof data === 'object' && 'message' in data) {
      message = String((data as { message: unknown }).message);
    } else if (response.status === 404) {
      message =
        'no such route: the nbfeatures server extension is not enabled on this Jupyter server ' +
        '(jupyter server extension list)';
    }
    throw new APIError(
      endPoint,
      response.status,
      `${what} failed (${response.status}): ${message}`
    );
  }
  return data as T;
}

/** POST a JSON body. */
export function postAPI<T>(endPoint: string, body: unknown): Promise<T> {
  return requestAPI<T>(endPoint, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' }
  });
}
