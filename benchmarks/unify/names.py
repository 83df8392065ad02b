# ruff: noqa: SIM905 (long word lists read best as split strings)
"""Built-in value lists for the unify benchmark generator (frozen: the generator must be
deterministic whatever else is installed). First and last names are in frequency order
(US census-style ranks, taken once from Faker 40 en_US); the generator samples them with a
Zipf-like weight on the rank. Cities are "name|state|base zip"."""

FEMALE = (
    "Jennifer Jessica Lisa Kimberly Amanda Michelle Elizabeth Melissa Ashley Sarah Mary "
    "Stephanie Amy Angela Nicole Heather Laura Rebecca Karen Kelly Emily Susan Rachel Christina "
    "Patricia Julie Samantha Megan Cynthia Christine Brittany Lauren Amber Andrea Danielle "
    "Tiffany Maria Katherine Tammy Sandra Linda Crystal Lori Shannon Pamela Brenda Donna Sara "
    "Erin Deborah Victoria Tina Jamie Teresa Kathleen Nancy Dawn Tracy Courtney Barbara "
    "Jacqueline Sharon Anna Kayla Denise April Catherine Kristen Erica Monica Hannah Kathryn "
    "Cheryl Debra Robin Wendy Taylor Margaret Vanessa Alicia Allison Diana Natalie Kristin "
    "Leslie Michele Theresa Holly Alexis Melanie Dana Cindy Julia Jill Alyssa Valerie Tara "
    "Stacy Diane Katie Jasmine Veronica Carol Carrie Rhonda Gina Stacey Alexandra Chelsea Kathy "
    "Carolyn Lindsey Ann Renee Brianna Morgan Kim Cassandra Janet Paula Kelsey Sherry Brooke "
    "Tonya Kristina Beth Heidi Sheila Laurie Lindsay Brandy Tamara Erika Anne Melinda Brandi "
    "Deanna Abigail Tanya Madison Leah Olivia Carla Suzanne Regina Sabrina Debbie Colleen Terri "
    "Connie Caitlin Jenna Natasha Felicia Molly Whitney Jordan Janice Marissa Shelby Brittney "
    "Katrina Misty Haley Kara Lynn Marie Tracey Alison Virginia Annette Meghan Kaitlyn Katelyn "
    "Miranda Christy Cathy Kendra Anita Bonnie Shelly Wanda Martha Sherri Monique Emma Krista "
    "Jodi Bethany Krystal Sydney Yolanda Caroline Casey Joanna Angel Gloria Audrey Paige "
    "Angelica Judy Rachael Kristy Gabrielle Destiny Ruth Kristi Joyce Yvonne Nichole Desiree "
    "Beverly Jillian Savannah Kristine Mariah Alexandria Becky Claudia Sierra Darlene Jane "
    "Briana Jenny Kelli Shelley Autumn Joy Sonya Sheri Carmen Toni Vicki Breanna Grace Judith "
    "Traci Rebekah Ana Jaime Dominique Betty Penny Shirley Evelyn Jean Peggy Madeline Joan Kari"
).split()

MALE = (
    "Michael David James John Christopher Robert Matthew William Daniel Joseph Brian Jason "
    "Joshua Mark Thomas Kevin Richard Anthony Andrew Steven Timothy Jeffrey Eric Ryan Charles "
    "Scott Justin Nicholas Jonathan Brandon Paul Kenneth Jacob Gregory Stephen Patrick Adam "
    "Aaron Benjamin Kyle Jeremy Tyler Zachary Ronald Edward Donald Sean Jose Alexander Nathan "
    "Gary Samuel Keith Bryan Douglas Shawn George Peter Todd Travis Jesse Chad Bradley Austin "
    "Larry Cody Raymond Jordan Craig Dennis Frank Juan Jerry Christian Derek Dustin Randy Terry "
    "Phillip Troy Carlos Jeffery Marcus Jared Joel Shane Tony Vincent Corey Luis Antonio Alan "
    "Victor Dylan Philip Brett Rodney Curtis Johnny Alex Russell Martin Roger Carl Erik Derrick "
    "Gabriel Brent Nathaniel Bruce Danny Ian Ricky Henry Jack Cory Cameron Billy Mitchell "
    "Wesley Trevor Allen Lawrence Bobby Gerald Jesus Joe Randall Wayne Jimmy Evan Jon Seth "
    "Walter Adrian Caleb Casey Marc Miguel Jay Steve Andre Chris Willie Arthur Manuel Taylor "
    "Logan Albert Devin Roy Micheal Jeff Darren Mario Lee Mike Luke Darrell Blake Louis "
    "Jeremiah Ricardo Jorge Dale Calvin Ethan Garrett Edwin Glenn Frederick Barry Lucas "
    "Francisco Lance Hunter Isaac Brad Connor Chase Dean Noah Reginald Oscar Jamie Harold "
    "Spencer Roberto Ronnie Angel Alejandro Johnathan Ralph Hector Dakota Eddie Colin Eugene "
    "Tommy Maurice Kelly Ruben Leonard Shaun Ernest Stanley Brendan Marvin Tracy Kurt Howard "
    "Dwayne Tim Jonathon Julian Grant Darryl Clayton Tanner Omar Jerome Isaiah Javier Greg "
    "Melvin Duane Dalton Mathew Drew Theodore Elijah Tyrone Harry Kristopher Clinton Cole "
    "Sergio Jim Jake Mason Dillon Fernando Clifford Colton Tom Devon Eduardo Bryce Jermaine "
    "Alec"
).split()

LAST = (
    "Smith Johnson Williams Brown Jones Miller Davis Garcia Rodriguez Wilson Martinez Anderson "
    "Taylor Thomas Hernandez Moore Martin Jackson Thompson White Lopez Lee Gonzalez Harris "
    "Clark Lewis Robinson Walker Perez Hall Young Allen Sanchez Wright King Scott Green Baker "
    "Adams Nelson Hill Ramirez Campbell Mitchell Roberts Carter Phillips Evans Turner Torres "
    "Parker Collins Edwards Stewart Flores Morris Nguyen Murphy Rivera Cook Rogers Morgan "
    "Peterson Cooper Reed Bailey Bell Gomez Kelly Howard Ward Cox Diaz Richardson Wood Watson "
    "Brooks Bennett Gray James Reyes Cruz Hughes Price Myers Long Foster Sanders Ross Morales "
    "Powell Sullivan Russell Ortiz Jenkins Gutierrez Perry Butler Barnes Fisher Henderson "
    "Coleman Simmons Patterson Jordan Reynolds Hamilton Graham Kim Gonzales Alexander Ramos "
    "Wallace Griffin West Cole Hayes Chavez Gibson Bryant Ellis Stevens Murray Ford Marshall "
    "Owens Mcdonald Harrison Ruiz Kennedy Wells Alvarez Woods Mendoza Castillo Olson Webb "
    "Washington Tucker Freeman Burns Henry Vasquez Snyder Simpson Crawford Jimenez Porter Mason "
    "Shaw Gordon Wagner Hunter Romero Hicks Dixon Hunt Palmer Robertson Black Holmes Stone "
    "Meyer Boyd Mills Warren Fox Rose Rice Moreno Schmidt Patel Ferguson Nichols Herrera Medina "
    "Ryan Fernandez Weaver Daniels Stephens Gardner Payne Kelley Dunn Pierce Arnold Tran "
    "Spencer Peters Hawkins Grant Hansen Castro Hoffman Hart Elliott Cunningham Knight Bradley "
    "Carroll Hudson Duncan Armstrong Berry Andrews Johnston Ray Lane Riley Carpenter Perkins "
    "Aguilar Silva Richards Willis Matthews Chapman Lawrence Garza Vargas Watkins Wheeler "
    "Larson Carlson Harper George Greene Burke Guzman Morrison Munoz Jacobs Obrien Lawson "
    "Franklin Lynch Bishop Carr Salazar Austin Mendez Gilbert Jensen Williamson Montgomery "
    "Harvey Oliver Howell Dean Hanson Weber Garrett Sims Burton Fuller Soto Mccoy Welch Chen "
    "Schultz Walters Reid Fields Walsh Little Fowler Bowman Davidson May Day Schneider Newman "
    "Brewer Lucas Holland Wong Banks Santos Curtis Pearson Delgado Valdez Pena Rios Douglas "
    "Sandoval Barrett Hopkins Keller Guerrero Stanley Bates Alvarado Beck Ortega Wade Estrada "
    "Contreras Barnett Caldwell Santiago Lambert Powers Chambers Nunez Craig Leonard Lowe "
    "Rhodes Byrd Gregory Shelton Frazier Becker Maldonado Fleming Vega Sutton Cohen Jennings "
    "Parks Mcdaniel Watts Barker Norris Vaughn Vazquez Holt Schwartz Steele Benson Neal "
    "Dominguez Horton Terry Wolfe Hale Lyons Graves Haynes Miles Park Warner Padilla Bush "
    "Thornton Mccarthy Mann Zimmerman Erickson Fletcher Mckinney Page Dawson Joseph Marquez "
    "Reeves Klein Espinoza Baldwin Moran Love Robbins Higgins Ball Cortez Le Griffith Bowen "
    "Sharp Cummings Ramsey Hardy Swanson Barber Acosta Luna Chandler Daniel Blair Cross Simon "
    "Dennis Oconnor Quinn Gross Navarro Moss Fitzgerald Doyle Mclaughlin Rojas Rodgers "
    "Stevenson Singh Yang Figueroa Harmon Newton Paul Manning Garner Mcgee Reese Francis "
    "Burgess Adkins Goodman Curry Brady Christensen Potter Walton Goodwin Mullins Molina "
    "Webster Fischer Campos Avila Sherman Todd Chang Blake Malone Wolf Hodges Juarez Gill "
    "Farmer Hines Gallagher Duran Hubbard Cannon Miranda Wang Saunders Tate Mack Hammond "
    "Carrillo Townsend Wise Ingram Barton Mejia Ayala Schroeder Hampton Rowe Parsons Frank "
    "Waters Strickland Osborne Maxwell Chan Deleon Norman Harrington Casey Patton Logan Bowers "
    "Mueller Glover Floyd Hartman Buchanan Cobb French Kramer Mccormick Clarke Tyler Gibbs "
    "Moody Conner Sparks Mcguire Leon Bauer Norton Pope Flynn Hogan Robles Salinas Yates "
    "Lindsey Lloyd Marsh Mcbride Owen Solis Pham Lang Pratt Lara Brock Ballard Trujillo Shaffer "
    "Drake Roman Aguirre Morton Stokes Lamb Pacheco Patrick Cochran Shepherd Cain Burnett Hess "
    "Li Cervantes Olsen Briggs Ochoa Cabrera Velasquez Montoya Roth Meyers Cardenas Fuentes "
    "Weiss Wilkins Hoover Nicholson Underwood Short Carson Morrow Colon Holloway Summers Bryan "
    "Petersen Mckenzie Serrano Wilcox Carey Clayton Poole Calderon Gallegos Greer Rivas Guerra "
    "Decker Collier Wall Whitaker Bass Flowers Davenport Conley Houston Huff Copeland Hood "
    "Monroe Massey Roberson Combs Franco Larsen Pittman Randall Skinner Wilkinson Kirby Cameron "
    "Bridges Anthony Richard Kirk Bruce Singleton Mathis Bradford Boone Abbott Charles Allison "
    "Sweeney Atkinson Horn Jefferson Rosales York Christian Phelps Farrell Castaneda Nash "
    "Dickerson Bond Wyatt Foley Chase Gates Vincent Mathews Hodge Garrison Trevino Villarreal "
    "Heath Dalton Valencia Callahan Hensley Atkins Huffman Roy Boyer Shields Lin Hancock Grimes "
    "Glenn Cline Delacruz Camacho Dillon Parrish Oneill Melton Booth Kane Berg Harrell Pitts "
    "Savage Wiggins Brennan Salas Marks Russo Sawyer Baxter Golden Hutchinson Liu Walter "
    "Mcdowell Wiley Rich Humphrey Johns Koch Suarez Hobbs Beard Gilmore Ibarra Keith Macias "
    "Khan Andrade Ware Stephenson Henson Wilkerson Dyer Mcclure Blackwell Mercado Tanner Eaton "
    "Clay Barron Beasley Oneal Small Preston Wu Zamora Macdonald Vance Snow Mcclain Stafford "
    "Orozco Barry English Shannon Kline Jacobson Woodard Huang Kemp Mosley Prince Merritt Hurst "
    "Villanueva Roach Nolan Lam Yoder Mccullough Lester Santana Valenzuela Winters Barrera Orr "
    "Leach Berger Mckee Strong Conway Stein Whitehead Bullock Escobar Knox Meadows Solomon "
    "Velez Odonnell Kerr Stout Blankenship Browning Kent Lozano Bartlett Pruitt Buck Barr "
    "Gaines Durham Gentry Mcintyre Sloan Rocha Melendez Herman Sexton Moon Hendricks Rangel "
    "Stark Lowery Hardin Hull Sellers Ellison Calhoun Gillespie Mora Knapp Mccall Morse Dorsey "
    "Weeks Nielsen Livingston Leblanc Mclean Bradshaw Glass Middleton Buckley Schaefer Frost "
    "Howe House Mcintosh Ho Pennington Reilly Hebert Mcfarland Hickman Noble Spears Conrad "
    "Arias Galvan Velazquez Huynh Frederick Randolph Cantu Fitzpatrick Mahoney Peck Villa "
    "Michael Donovan Mcconnell Walls Boyle Mayer Zuniga Giles Pineda Pace Hurley Mays Mcmillan "
    "Crosby Ayers Case Bentley Shepard Everett Pugh David Mcmahon Dunlap Bender Hahn Harding "
    "Acevedo Raymond Blackburn Duffy Landry Dougherty Bautista Shah Potts Arroyo Valentine Meza "
    "Gould Vaughan Fry Rush Avery Herring Dodson Clements Sampson Tapia Bean Lynn Crane Farley "
    "Cisneros Benton Ashley Mckay Finley Best Blevins Friedman Moses Sosa Blanchard Huber Frye "
    "Krueger Bernard Rosario Rubio Mullen Benjamin Haley Chung Moyer Choi Horne Yu Woodward Ali "
    "Nixon Hayden Rivers Estes Mccarty Richmond Stuart Maynard Brandt Oconnell Hanna Sanford "
    "Sheppard Church Burch Levy Rasmussen Coffey Ponce Faulkner Donaldson Schmitt Novak Costa "
    "Montes Booker Cordova Waller Arellano Maddox Mata Bonilla Stanton Compton Kaufman Dudley "
    "Mcpherson Beltran Dickson Mccann Villegas Proctor Hester Cantrell Daugherty Cherry Bray "
    "Davila Rowland Madden Levine Spence Good Irwin Werner Krause Petty Whitney Baird Hooper "
    "Pollard Zavala Jarvis Holden Hendrix Haas Mcgrath Bird Lucero Terrell Riggs Joyce Rollins "
    "Mercer Galloway Duke Odom Andersen Downs Hatfield Benitez Archer Huerta Travis Mcneil "
    "Hinton Zhang Hays Mayo Fritz Branch Mooney Ewing Ritter Esparza Frey Braun Gay Riddle "
    "Haney Kaiser Holder Chaney Mcknight Gamble Vang Cooley Carney Cowan Forbes Ferrell Davies "
    "Barajas Shea Osborn Bright Cuevas Bolton Murillo Lutz Duarte Kidd Key Cooke"
).split()

STREETS = (
    "Main Oak Pine Maple Cedar Elm Birch Walnut Willow Spruce Ash Cherry Chestnut Hickory "
    "Magnolia Poplar Sycamore Aspen Cypress Dogwood Holly Juniper Laurel Linden Locust Mulberry "
    "Pecan Redwood Hawthorn Washington Lincoln Jefferson Madison Monroe Adams Jackson Franklin "
    "Hamilton Grant Harrison Polk Tyler Pierce Kennedy Roosevelt Lake Hill Park River Sunset "
    "Ridge Meadow Forest Spring Valley Highland Church Mill Bridge Prospect Summit Union Center "
    "Market Broad Water High School College Academy Orchard Garden Grove Heritage Liberty "
    "Pleasant Fairview Lakeview Hillside Riverside Woodland Country Bay Harbor Beach Canyon "
    "Creek Brook Glen Heather Ivy Rose Sunrise Vista Meadowbrook Cottonwood Clearwater "
    "Greenwood Oakwood Pinecrest Stonegate Timber Windsor Cambridge Oxford Chester Dover Essex "
    "Kingston Princeton Lexington Concord Salem Quincy Fulton Belmont Cherokee Dakota Mohawk "
    "Seneca Gordon Wagner Hunter Romero Hicks Dixon Hunt Palmer Robertson Black Holmes Stone "
    "Meyer Boyd Mills Warren Fox Rice Moreno Schmidt Patel Ferguson Nichols Herrera Medina Ryan "
    "Fernandez Weaver Daniels Stephens Gardner Payne Kelley Dunn Arnold Tran Spencer Peters "
    "Hawkins Hansen Castro Hoffman Hart Elliott Cunningham Knight Bradley Carroll Hudson Duncan "
    "Armstrong Berry Andrews Johnston Ray Lane Riley Carpenter Perkins Aguilar Silva Richards "
    "Willis Matthews Chapman Lawrence Garza Vargas Watkins Wheeler Larson Carlson Harper George "
    "Greene Burke Guzman Morrison Munoz Jacobs Obrien Lawson Lynch Bishop Carr Salazar Austin "
    "Mendez Gilbert Jensen Williamson Montgomery Harvey Oliver Howell Dean Hanson Weber Garrett "
    "Sims Burton Fuller Soto Mccoy Welch Chen Schultz Walters Reid Fields Walsh Little Fowler "
    "Bowman Davidson May Day Schneider Newman Brewer Lucas Holland Wong Banks Santos Curtis "
    "Pearson Delgado Valdez Pena Rios Douglas Sandoval Barrett Hopkins Keller Guerrero Stanley "
    "Bates Alvarado Beck Ortega Wade Estrada Contreras Barnett Caldwell Santiago Lambert Powers "
    "Chambers Nunez Craig Leonard Lowe Rhodes Byrd Gregory Shelton Frazier Becker Maldonado "
    "Fleming Vega Sutton Cohen Jennings Parks Mcdaniel Watts Barker Norris Vaughn Vazquez Holt "
    "Schwartz Steele Benson Neal Dominguez"
).split()

CITIES = (
    "New York|NY|13707;Los Angeles|CA|90365;Chicago|IL|62294;Houston|TX|77027;Phoenix|AZ|85240;"
    "Philadelphia|PA|19327;San Antonio|TX|76563;San Diego|CA|91286;Dallas|TX|79888;"
    "San Jose|CA|90052;Austin|TX|77208;Jacksonville|FL|32317;Fort Worth|TX|75605;"
    "Columbus|OH|44699;Charlotte|NC|28025;Indianapolis|IN|46014;San Francisco|CA|94613;"
    "Seattle|WA|98395;Denver|CO|81338;Oklahoma City|OK|73116;Nashville|TN|37488;"
    "El Paso|TX|76735;Washington|DC|20001;Boston|MA|02646;Las Vegas|NV|89449;Portland|OR|97414;"
    "Detroit|MI|48224;Louisville|KY|40973;Memphis|TN|38008;Baltimore|MD|20896;"
    "Milwaukee|WI|54612;Albuquerque|NM|88143;Tucson|AZ|86161;Fresno|CA|90740;"
    "Sacramento|CA|90145;Mesa|AZ|86126;Kansas City|MO|63099;Atlanta|GA|31804;Omaha|NE|68001;"
    "Colorado Springs|CO|80594;Raleigh|NC|27690;Long Beach|CA|95192;Virginia Beach|VA|24584;"
    "Miami|FL|34031;Oakland|CA|91753;Minneapolis|MN|55619;Tulsa|OK|73014;Bakersfield|CA|94170;"
    "Wichita|KS|66767;Arlington|TX|75611;Aurora|CO|81200;Tampa|FL|34623;New Orleans|LA|70058;"
    "Cleveland|OH|43825;Honolulu|HI|96708;Anaheim|CA|90758;Lexington|KY|40344;Stockton|CA|90401;"
    "Henderson|NV|88961;Riverside|CA|93087;Newark|NJ|07795;Saint Paul|MN|56195;"
    "Cincinnati|OH|43421;Orlando|FL|32767;Irvine|CA|92452;Plano|TX|77301;Greensboro|NC|27142;"
    "Lincoln|NE|68035;Durham|NC|28680;Buffalo|NY|14348;Jersey City|NJ|08300;Chandler|AZ|85013;"
    "Toledo|OH|45558;Fort Wayne|IN|47020;St. Petersburg|FL|32212;Laredo|TX|77644;"
    "Madison|WI|54187;Lubbock|TX|76549;Scottsdale|AZ|85879;Reno|NV|89747;Glendale|AZ|85314;"
    "Gilbert|AZ|86012;Winston-Salem|NC|27068;Norfolk|VA|24119;Chesapeake|VA|22499;"
    "Garland|TX|76036;Irving|TX|79251;Boise|ID|83546;Spokane|WA|98954;Richmond|VA|24051;"
    "Fremont|CA|95537;Baton Rouge|LA|70314;Des Moines|IA|50620;Tacoma|WA|98664;"
    "San Bernardino|CA|90255;Modesto|CA|92989;Fontana|CA|90766;Moreno Valley|CA|91838;"
    "Birmingham|AL|35104;Fayetteville|NC|27268;Rochester|NY|11583;Oxnard|CA|90122;"
    "Yonkers|NY|11717;Huntsville|AL|36332;Montgomery|AL|35900;Akron|OH|43196;"
    "Little Rock|AR|72169;Amarillo|TX|79288;Augusta|GA|31485;Grand Rapids|MI|49219;"
    "Columbus|GA|30655;Salt Lake City|UT|84628;Tallahassee|FL|33787;Overland Park|KS|66159;"
    "Knoxville|TN|37299;Worcester|MA|01815;Newport News|VA|23937;Brownsville|TX|79588;"
    "Santa Clarita|CA|92415;Providence|RI|02814;Fort Lauderdale|FL|34137;Chattanooga|TN|37260;"
    "Tempe|AZ|85037;Oceanside|CA|93049;Garden Grove|CA|91370;Rancho Cucamonga|CA|91266;"
    "Cape Coral|FL|33375;Santa Rosa|CA|91071;Vancouver|WA|98082;Sioux Falls|SD|57209;"
    "Peoria|AZ|85461;Ontario|CA|94307;Jackson|MS|38898;Elk Grove|CA|94352;Springfield|MO|65614;"
    "Pembroke Pines|FL|34324;Salem|OR|97662;Corona|CA|90287;Eugene|OR|97552;McKinney|TX|77101;"
    "Fort Collins|CO|80762;Lancaster|CA|92677;Cary|NC|28279;Palmdale|CA|95161;Hayward|CA|91916;"
    "Salinas|CA|93454;Frisco|TX|77648;Springfield|MA|01785;Pasadena|TX|77819;Macon|GA|31931;"
    "Alexandria|VA|22286;Pomona|CA|93759;Lakewood|CO|80705;Sunnyvale|CA|93881;"
    "Escondido|CA|92522;Kansas City|KS|67561;Hollywood|FL|32419;Clarksville|TN|37981;"
    "Torrance|CA|91278;Rockford|IL|62055;Joliet|IL|60291;Paterson|NJ|07337;Bridgeport|CT|06204;"
    "Naperville|IL|60751;Savannah|GA|31527;Mesquite|TX|75611;Syracuse|NY|10959;"
    "Pasadena|CA|90574;Orange|CA|90134;Fullerton|CA|91981;Killeen|TX|79156;Dayton|OH|45914;"
    "McAllen|TX|76350;Bellevue|WA|98984;Miramar|FL|33859;Hampton|VA|23777;"
    "West Valley City|UT|84674;Warren|MI|49642;Olathe|KS|67605;Columbia|SC|29707;"
    "Thornton|CO|81177;Carrollton|TX|79401;Midland|TX|79547;Charleston|SC|29200;Waco|TX|78393;"
    "Sterling Heights|MI|48675;Denton|TX|75902;Cedar Rapids|IA|50360;New Haven|CT|06239;"
    "Roseville|CA|90877;Gainesville|FL|32634;Visalia|CA|95911;Coral Springs|FL|32384;"
    "Thousand Oaks|CA|91632;Elizabeth|NJ|07356;Stamford|CT|06027;Concord|CA|92709;"
    "Surprise|AZ|86079;Lafayette|LA|70801;Topeka|KS|67217;Kent|WA|99257;Simi Valley|CA|94946;"
    "Santa Clara|CA|93501;Murfreesboro|TN|37445;Hartford|CT|06038;Athens|GA|31156;"
    "Victorville|CA|91488;Abilene|TX|75668;Vallejo|CA|90256;Berkeley|CA|92572;Norman|OK|73114;"
    "Allentown|PA|16425;Evansville|IN|46376;Columbia|MO|63881;Odessa|TX|76846;Fargo|ND|58566;"
    "Beaumont|TX|76901;Independence|MO|65274;Ann Arbor|MI|49724;El Monte|CA|93853;"
    "Springfield|IL|61480;Round Rock|TX|76300;Wilmington|NC|28332;Arvada|CO|81373;"
    "Provo|UT|84253;Peoria|IL|60247;Lansing|MI|48347;Downey|CA|93622;Carlsbad|CA|93616;"
    "Westminster|CO|81042;Rochester|MN|55451;Costa Mesa|CA|93476;Miami Gardens|FL|32863;"
    "Pueblo|CO|80884;Billings|MT|59183;Manchester|NH|03731;Burlington|VT|05418;"
    "Portland|ME|04024;Cheyenne|WY|82722;Wilmington|DE|19787"
).split(";")

NICKNAMES = {
    "Elizabeth": "Liz",
    "Jennifer": "Jen",
    "Katherine": "Kate",
    "Margaret": "Peggy",
    "Patricia": "Pat",
    "Susan": "Sue",
    "Deborah": "Deb",
    "Rebecca": "Becky",
    "Christina": "Tina",
    "Kimberly": "Kim",
    "Jessica": "Jess",
    "Victoria": "Vicky",
    "Samantha": "Sam",
    "Alexandra": "Alex",
    "Stephanie": "Steph",
    "Abigail": "Abby",
    "Cynthia": "Cindy",
    "Barbara": "Barb",
    "Pamela": "Pam",
    "Catherine": "Cathy",
    "William": "Bill",
    "Robert": "Bob",
    "James": "Jim",
    "John": "Jack",
    "Michael": "Mike",
    "Richard": "Rick",
    "Thomas": "Tom",
    "Charles": "Charlie",
    "Christopher": "Chris",
    "Daniel": "Dan",
    "Matthew": "Matt",
    "Anthony": "Tony",
    "Joseph": "Joe",
    "David": "Dave",
    "Steven": "Steve",
    "Edward": "Ed",
    "Timothy": "Tim",
    "Benjamin": "Ben",
    "Jonathan": "Jon",
    "Nicholas": "Nick",
    "Andrew": "Andy",
    "Joshua": "Josh",
    "Gregory": "Greg",
    "Samuel": "Sam",
    "Alexander": "Alex",
    "Patrick": "Pat",
}

DOMAINS = ["gmail.com"] * 8 + ["yahoo.com"] * 3 + ["hotmail.com"] * 2 + [
    "outlook.com", "aol.com", "icloud.com", "comcast.net", "msn.com", "att.net", "live.com",
]  # fmt: skip
STREET_TYPES = [
    ("Street", "St"), ("Avenue", "Ave"), ("Road", "Rd"), ("Drive", "Dr"), ("Lane", "Ln"),
    ("Court", "Ct"), ("Boulevard", "Blvd"), ("Place", "Pl"), ("Way", "Wy"),
]  # fmt: skip
APT_FORMS = ["Apt ", "#", "Apt. ", "Unit "]
# Phone formats (prefix, separator, separator): (555) 123-4567, 555.123.4567, +1 555 123 4567,
# 5551234567, 555-123-4567.
PHONE_FORMS = [("(", ") ", "-"), ("", ".", "."), ("+1 ", " ", " "), ("", "", ""), ("", "-", "-")]
