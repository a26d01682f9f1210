import RedirectorCore

/// The `nearest-region` step of a provider: for each region a client can be in, the provider's
/// regions that have targets, ordered by great-circle distance (ties by region name).
struct RegionOrdering {
    /// The provider's regions with targets, in ``Provider/regionTargets`` order.
    let regions: [String]
    /// Regions the provider's prefixes name.
    let clientRegions: Set<String>
    /// Locations from the config, which replace or add to ``RegionLocations``.
    let overrides: [String: LocationConfig]
    /// The provider's place in the config, for errors.
    let place: String
    /// `nearestRegion: failover`: orders only for regions with targets (others keep the provider's).
    let onlyRegionsWithTargets: Bool

    /// The orders, one per region with a known location.
    func orders(_ strings: inout StringTableBuilder) throws -> [RegionOrder] {
        var locations: [String: RegionLocation] = [:]
        for (region, point) in overrides {
            guard (-90...90).contains(point.latitude), (-180...180).contains(point.longitude) else {
                throw ConfigError(place: "\(place).regionLocations.\(region)", message: "latitude must be in -90…90 and longitude in -180…180")
            }
            locations[region] = RegionLocation(provider: "", region: region, city: "", latitude: point.latitude, longitude: point.longitude)
        }
        func location(_ region: String) -> RegionLocation? { locations[region] ?? RegionLocations.location(region: region) }
        for region in regions where location(region) == nil {
            throw ConfigError(place: "\(place).regions.\(region)",
                              message: "no known location for region '\(region)' (nearestRegion needs one: add it under regionLocations)")
        }
        var orders: [RegionOrder] = []
        let sources = onlyRegionsWithTargets ? Set(regions) : clientRegions.union(regions).union(overrides.keys)
        for region in sources.sorted() {
            guard let here = location(region) else { continue }
            let nearest = regions.indices
                .filter { regions[$0] != region }
                .map { (distance: RegionLocations.distance(here, location(regions[$0]) ?? here), index: $0) }
                .sorted { ($0.distance, $0.index) < ($1.distance, $1.index) }
                .map { UInt16($0.index) }
            orders.append(RegionOrder(region: strings.intern(region), nearest: nearest))
        }
        return orders
    }
}
