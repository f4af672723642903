// Schemas every route needs: plumbing requires a querystring schema on each route (and a body
// schema on changes), so a route that takes neither says so with these.
import Type from 'typebox';

export const NoQuery = Type.Object({}, { additionalProperties: false });
export const EmptyBody = Type.Object({}, { additionalProperties: false });
