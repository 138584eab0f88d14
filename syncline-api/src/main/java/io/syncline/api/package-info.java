/**
 * Syncline's public vocabulary: the change records that flow from capture to apply, batch identity,
 * node roles and the exception hierarchy. This package has no third-party dependencies.
 */
package io.syncline.api;
