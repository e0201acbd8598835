/**
 * Defaults the daemon's configuration and its transports share, kept here so the configuration
 * (control) need not import a transport (io) to know them.
 */

/** Egress bytes a port may hold before frames to it are dropped: bursts fit, and the queue adds a few ms at most. */
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024
