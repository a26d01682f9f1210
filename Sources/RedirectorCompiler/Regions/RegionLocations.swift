import Foundation

// Provenance of the table below.
//
// The city of each region is the location the provider itself documents for that region: AWS in
// its "Regions and Availability Zones" documentation, Google Cloud in its "Regions and zones"
// documentation, Microsoft Azure in its "Azure geographies" pages and region list. Where that
// location is wider than a city (a state, a province, a country: AWS "N. Virginia", Azure
// "Virginia" or "Netherlands"), the row names the documented location followed by the city whose
// coordinates it carries, in parentheses, e.g. `Northern Virginia (Ashburn)`; that city is this
// project's choice of a representative city there, not the provider's statement.
//
// The coordinates are that city's centre (WGS84), rounded to 0.01 degree (about 1 km). The table
// was written by hand for this project; it is not copied from another project's file. Region ids
// were checked against the providers' IP-range files (AWS ip-ranges.json `region`, Google Cloud
// cloud.json `scope`, Azure ServiceTags `properties.region`). A deployment can override or add a
// location per provider in the config (`regionLocations`), see docs/region-locations.md.

/// Where the public regions of AWS, Google Cloud and Microsoft Azure are, for sending a client
/// whose region has no healthy mirror to the nearest region by great-circle distance.
///
/// `csv` is the table itself (`redirector regions` prints it); `all` is its rows parsed;
/// `location(provider:region:)` looks a region up and `distance(_:_:)` measures between two.
///
/// Region ids are spelt exactly as each provider's IP-range file spells them: AWS `us-east-1`,
/// Google Cloud `us-east1`, Azure ServiceTags `eastus`. Note that ServiceTags abbreviate some
/// Azure regions differently from their ARM names: `centralfrance` (France Central),
/// `southfrance`, `germanywc` (Germany West Central), `germanyn`, `norwaye`, `norwayw`,
/// `switzerlandn`, `switzerlandw`, `brazilse` (Brazil Southeast), `chilec` (Chile Central).
///
/// Listed are the regions generally available to the public, and the few restricted-access ones
/// with a documented city (Azure `australiacentral2`, `brazilse`, `southafricawest`, ...). Canary,
/// staging and unannounced regions that appear in the IP-range files are not listed; a config can
/// add them with `regionLocations`.
public enum RegionLocations {
    /// The table: header `provider,region,city,latitude,longitude`, then one row per region,
    /// sorted by provider then region. `provider` is `aws`, `azure` or `gcp`; `city` contains no
    /// commas; latitude and longitude are decimal degrees (WGS84, north and east positive).
    public static let csv: String = """
        provider,region,city,latitude,longitude
        aws,af-south-1,Cape Town,-33.92,18.42
        aws,ap-east-1,Hong Kong,22.32,114.17
        aws,ap-east-2,Taipei,25.03,121.57
        aws,ap-northeast-1,Tokyo,35.69,139.69
        aws,ap-northeast-2,Seoul,37.57,126.98
        aws,ap-northeast-3,Osaka,34.69,135.50
        aws,ap-south-1,Mumbai,19.08,72.88
        aws,ap-south-2,Hyderabad,17.39,78.49
        aws,ap-southeast-1,Singapore,1.35,103.82
        aws,ap-southeast-2,Sydney,-33.87,151.21
        aws,ap-southeast-3,Jakarta,-6.21,106.85
        aws,ap-southeast-4,Melbourne,-37.81,144.96
        aws,ap-southeast-5,Malaysia (Kuala Lumpur),3.14,101.69
        aws,ap-southeast-6,New Zealand (Auckland),-36.85,174.76
        aws,ap-southeast-7,Thailand (Bangkok),13.76,100.50
        aws,ca-central-1,Canada Central (Montreal),45.50,-73.57
        aws,ca-west-1,Calgary,51.05,-114.07
        aws,cn-north-1,Beijing,39.90,116.41
        aws,cn-northwest-1,Ningxia (Zhongwei),37.51,105.20
        aws,eu-central-1,Frankfurt,50.11,8.68
        aws,eu-central-2,Zurich,47.38,8.54
        aws,eu-north-1,Stockholm,59.33,18.07
        aws,eu-south-1,Milan,45.46,9.19
        aws,eu-south-2,Spain (Zaragoza),41.65,-0.89
        aws,eu-west-1,Ireland (Dublin),53.35,-6.26
        aws,eu-west-2,London,51.51,-0.13
        aws,eu-west-3,Paris,48.86,2.35
        aws,eusc-de-east-1,Brandenburg (Potsdam),52.39,13.06
        aws,il-central-1,Tel Aviv,32.09,34.78
        aws,me-central-1,UAE (Dubai),25.20,55.27
        aws,me-south-1,Bahrain (Manama),26.23,50.59
        aws,mx-central-1,Mexico Central (Queretaro),20.59,-100.39
        aws,sa-east-1,Sao Paulo,-23.55,-46.63
        aws,us-east-1,Northern Virginia (Ashburn),39.04,-77.49
        aws,us-east-2,Ohio (Columbus),39.96,-83.00
        aws,us-west-1,Northern California (San Francisco),37.77,-122.42
        aws,us-west-2,Oregon (Boardman),45.84,-119.70
        azure,australiacentral,Canberra,-35.28,149.13
        azure,australiacentral2,Canberra,-35.28,149.13
        azure,australiaeast,New South Wales (Sydney),-33.87,151.21
        azure,australiasoutheast,Victoria (Melbourne),-37.81,144.96
        azure,austriaeast,Vienna,48.21,16.37
        azure,brazilse,Rio de Janeiro,-22.91,-43.17
        azure,brazilsouth,Sao Paulo State (Sao Paulo),-23.55,-46.63
        azure,canadacentral,Toronto,43.65,-79.38
        azure,canadaeast,Quebec City,46.81,-71.21
        azure,centralfrance,Paris,48.86,2.35
        azure,centralindia,Pune,18.52,73.86
        azure,centralus,Iowa (Des Moines),41.59,-93.62
        azure,chilec,Santiago,-33.45,-70.67
        azure,eastasia,Hong Kong,22.32,114.17
        azure,eastus,Virginia (Richmond),37.54,-77.44
        azure,eastus2,Virginia (Boydton),36.67,-78.39
        azure,germanyn,Berlin,52.52,13.40
        azure,germanywc,Frankfurt,50.11,8.68
        azure,indonesiacentral,Jakarta,-6.21,106.85
        azure,israelcentral,Israel (Tel Aviv),32.09,34.78
        azure,italynorth,Milan,45.46,9.19
        azure,japaneast,Tokyo,35.69,139.69
        azure,japanwest,Osaka,34.69,135.50
        azure,jioindiacentral,Nagpur,21.15,79.09
        azure,jioindiawest,Jamnagar,22.47,70.06
        azure,koreacentral,Seoul,37.57,126.98
        azure,koreasouth,Busan,35.18,129.08
        azure,malaysiawest,Kuala Lumpur,3.14,101.69
        azure,mexicocentral,Queretaro State (Queretaro),20.59,-100.39
        azure,newzealandnorth,Auckland,-36.85,174.76
        azure,northcentralus,Illinois (Chicago),41.88,-87.63
        azure,northeurope,Ireland (Dublin),53.35,-6.26
        azure,norwaye,Oslo,59.91,10.75
        azure,norwayw,Stavanger,58.97,5.73
        azure,polandcentral,Warsaw,52.23,21.01
        azure,qatarcentral,Doha,25.29,51.53
        azure,southafricanorth,Johannesburg,-26.20,28.05
        azure,southafricawest,Cape Town,-33.92,18.42
        azure,southcentralus,Texas (San Antonio),29.42,-98.49
        azure,southeastasia,Singapore,1.35,103.82
        azure,southfrance,Marseille,43.30,5.37
        azure,southindia,Chennai,13.08,80.27
        azure,spaincentral,Madrid,40.42,-3.70
        azure,swedencentral,Gavle,60.67,17.14
        azure,swedensouth,Malmo,55.60,13.00
        azure,switzerlandn,Zurich,47.38,8.54
        azure,switzerlandw,Geneva,46.20,6.14
        azure,taiwannorth,Taipei,25.03,121.57
        azure,uaecentral,Abu Dhabi,24.45,54.38
        azure,uaenorth,Dubai,25.20,55.27
        azure,uksouth,London,51.51,-0.13
        azure,ukwest,Cardiff,51.48,-3.18
        azure,westcentralus,Wyoming (Cheyenne),41.14,-104.82
        azure,westeurope,Netherlands (Amsterdam),52.37,4.90
        azure,westindia,Mumbai,19.08,72.88
        azure,westus,California (San Francisco),37.77,-122.42
        azure,westus2,Washington (Quincy),47.23,-119.85
        azure,westus3,Phoenix,33.45,-112.07
        gcp,africa-south1,Johannesburg,-26.20,28.05
        gcp,asia-east1,Changhua County (Changhua City),24.08,120.54
        gcp,asia-east2,Hong Kong,22.32,114.17
        gcp,asia-northeast1,Tokyo,35.69,139.69
        gcp,asia-northeast2,Osaka,34.69,135.50
        gcp,asia-northeast3,Seoul,37.57,126.98
        gcp,asia-south1,Mumbai,19.08,72.88
        gcp,asia-south2,Delhi,28.61,77.21
        gcp,asia-southeast1,Jurong West (Singapore),1.34,103.71
        gcp,asia-southeast2,Jakarta,-6.21,106.85
        gcp,australia-southeast1,Sydney,-33.87,151.21
        gcp,australia-southeast2,Melbourne,-37.81,144.96
        gcp,europe-central2,Warsaw,52.23,21.01
        gcp,europe-north1,Hamina,60.57,27.20
        gcp,europe-north2,Stockholm,59.33,18.07
        gcp,europe-southwest1,Madrid,40.42,-3.70
        gcp,europe-west1,St. Ghislain,50.45,3.82
        gcp,europe-west10,Berlin,52.52,13.40
        gcp,europe-west12,Turin,45.07,7.69
        gcp,europe-west2,London,51.51,-0.13
        gcp,europe-west3,Frankfurt,50.11,8.68
        gcp,europe-west4,Eemshaven,53.44,6.83
        gcp,europe-west6,Zurich,47.38,8.54
        gcp,europe-west8,Milan,45.46,9.19
        gcp,europe-west9,Paris,48.86,2.35
        gcp,me-central1,Doha,25.29,51.53
        gcp,me-central2,Dammam,26.42,50.09
        gcp,me-west1,Tel Aviv,32.09,34.78
        gcp,northamerica-northeast1,Montreal,45.50,-73.57
        gcp,northamerica-northeast2,Toronto,43.65,-79.38
        gcp,northamerica-south1,Queretaro,20.59,-100.39
        gcp,southamerica-east1,Osasco (Sao Paulo),-23.53,-46.79
        gcp,southamerica-west1,Santiago,-33.45,-70.67
        gcp,us-central1,Council Bluffs,41.26,-95.86
        gcp,us-east1,Moncks Corner,33.20,-80.01
        gcp,us-east4,Ashburn,39.04,-77.49
        gcp,us-east5,Columbus,39.96,-83.00
        gcp,us-south1,Dallas,32.78,-96.80
        gcp,us-west1,The Dalles,45.59,-121.18
        gcp,us-west2,Los Angeles,34.05,-118.24
        gcp,us-west3,Salt Lake City,40.76,-111.89
        gcp,us-west4,Las Vegas,36.17,-115.14
        """

    /// The rows of `csv`, in table order.
    public static let all: [RegionLocation] = parse(csv)

    /// Rows by region id alone. Region ids are unique across the three providers today (AWS
    /// `me-central-1`, Google Cloud `me-central1`, Azure `uaenorth` never coincide); if an id ever
    /// came to name regions of several providers, its entry here lists all of them and
    /// `location(region:)` answers nil for it, so callers must then name the provider.
    private static let byRegion: [String: [RegionLocation]] = Dictionary(grouping: all, by: \.region)

    /// The location of `region`, a region id of any provider; nil when the table has no such
    /// region, or when the id names regions of more than one provider.
    public static func location(region: String) -> RegionLocation? {
        location(provider: nil, region: region)
    }

    /// The location of `region` of `provider` (`aws`, `azure` or `gcp`); with `provider` nil, the
    /// only region of any provider with that id (nil when there are several).
    public static func location(provider: String?, region: String) -> RegionLocation? {
        guard let candidates = byRegion[region] else { return nil }
        guard let provider else { return candidates.count == 1 ? candidates[0] : nil }
        return candidates.first { $0.provider == provider }
    }

    /// Mean radius of the Earth in kilometres (IUGG mean radius R1 of the WGS84 ellipsoid).
    public static let earthRadiusKilometres = 6371.0088

    /// Great-circle distance between two locations in kilometres: the haversine formula on a
    /// sphere of radius `earthRadiusKilometres`; within about 0.5% of the ellipsoidal distance.
    public static func distance(_ a: RegionLocation, _ b: RegionLocation) -> Double {
        let radians = Double.pi / 180
        let phi1 = a.latitude * radians
        let phi2 = b.latitude * radians
        let halfDeltaPhi = (b.latitude - a.latitude) * radians / 2
        let halfDeltaLambda = (b.longitude - a.longitude) * radians / 2
        let h = sin(halfDeltaPhi) * sin(halfDeltaPhi)
            + cos(phi1) * cos(phi2) * sin(halfDeltaLambda) * sin(halfDeltaLambda)
        return 2 * earthRadiusKilometres * asin(min(1, h.squareRoot()))
    }

    /// Parses the table: lines split on commas, the header and blank lines skipped. The table is
    /// compiled in, so a malformed row is a programming error and stops the program.
    private static func parse(_ text: String) -> [RegionLocation] {
        var rows: [RegionLocation] = []
        for line in text.split(separator: "\n") {
            let row = line.trimmingCharacters(in: .whitespaces)
            if row.isEmpty || row.hasPrefix("provider,") { continue }
            let fields = row.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5, let latitude = Double(fields[3]), let longitude = Double(fields[4]),
                  (-90...90).contains(latitude), (-180...180).contains(longitude)
            else { preconditionFailure("RegionLocations.csv: malformed row \"\(row)\"") }
            rows.append(RegionLocation(
                provider: fields[0], region: fields[1], city: fields[2],
                latitude: latitude, longitude: longitude
            ))
        }
        return rows
    }
}

/// One row of `RegionLocations.csv`: where a provider's region is.
public struct RegionLocation: Sendable, Hashable {
    /// `aws`, `azure` or `gcp`.
    public var provider: String
    /// The region id as the provider's IP-range file spells it (`us-east-1`, `us-east1`, `eastus`).
    public var region: String
    /// The provider's documented location, with the city the coordinates are for in parentheses
    /// when the documented location is wider than a city.
    public var city: String
    /// Latitude of the city centre in decimal degrees, WGS84, north positive.
    public var latitude: Double
    /// Longitude of the city centre in decimal degrees, WGS84, east positive.
    public var longitude: Double

    /// A location; the memberwise initializer, public.
    public init(provider: String, region: String, city: String, latitude: Double, longitude: Double) {
        self.provider = provider
        self.region = region
        self.city = city
        self.latitude = latitude
        self.longitude = longitude
    }
}
