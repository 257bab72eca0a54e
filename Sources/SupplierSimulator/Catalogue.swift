import Contracts

/// One match the supplier quotes.
struct CatalogueEvent: Sendable, Hashable {
    let eventId: String
    let homeTeam: String
    let awayTeam: String
}

/// The events and markets the simulator quotes: the four classic matches plus generated ones.
enum Catalogue {
    static let classicMatches: [CatalogueEvent] = [
        CatalogueEvent(eventId: "MATCH_001", homeTeam: "Flamengo", awayTeam: "Palmeiras"),
        CatalogueEvent(eventId: "MATCH_002", homeTeam: "Grêmio", awayTeam: "Internacional"),
        CatalogueEvent(eventId: "MATCH_003", homeTeam: "Corinthians", awayTeam: "Santos"),
        CatalogueEvent(eventId: "MATCH_004", homeTeam: "São Paulo", awayTeam: "Vasco"),
    ]

    /// Every event quotes these markets (the contract's known markets).
    static let markets: [KnownMarket] = [.matchResult, .overUnder25, .bothTeamsToScore]

    static let generatedTeamNames = [
        "Atlético Mineiro", "Cruzeiro", "Botafogo", "Fluminense", "Bahia", "Fortaleza",
        "Athletico Paranaense", "Bragantino", "Vitória", "Juventude", "Sport Recife", "Ceará",
        "Goiás", "Coritiba", "América Mineiro", "Cuiabá", "Chapecoense", "Avaí", "Ponte Preta",
        "Guarani", "Náutico", "Santa Cruz", "Paysandu", "Remo", "CRB", "CSA", "Vila Nova", "Criciúma",
    ]

    /// The classic matches followed by `generatedCount` events `GEN_0001`, `GEN_0002`, ...
    /// whose pairings cycle through `generatedTeamNames` (deterministic, no randomness needed).
    static func events(generatedCount: Int) -> [CatalogueEvent] {
        let names = generatedTeamNames
        let generated = (0..<generatedCount).map { index -> CatalogueEvent in
            let home = names[index % names.count]
            // An offset that never pairs a team with itself.
            let offset = 1 + (index / names.count) % (names.count - 1)
            let away = names[(index + offset) % names.count]
            let number = String(index + 1)
            let padded = String(repeating: "0", count: max(0, 4 - number.count)) + number
            return CatalogueEvent(eventId: "GEN_\(padded)", homeTeam: home, awayTeam: away)
        }
        return classicMatches + generated
    }
}
